import { sql } from "kysely";
import { PLATFORM_TENANT, type Actor, type RequestMeta } from "../auth/actor.ts";
import { AuthFailure } from "../auth/verifyToken.ts";
import type { Tier } from "../domain/tenant/events.ts";
import { UnauthenticatedError } from "../errors.ts";
import { withTenant } from "../store/db.ts";
import type { AppDeps } from "./deps.ts";

/** One message for every refused token: the reason goes to the audit log, not to the caller. */
export const INVALID_TOKEN = "invalid or expired access token";

/**
 * Turns an Authorization header into an Actor. No header means an anonymous caller (null); a header
 * that does not hold a valid, unrevoked token of a known tenant is refused and recorded.
 */
export async function authenticate(
  deps: Pick<AppDeps, "db" | "verifier" | "security"> & Partial<Pick<AppDeps, "metrics">>,
  authorization: string | null | undefined,
  request: RequestMeta,
): Promise<Actor | null> {
  if (!authorization) return null;
  try {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(authorization.trim());
    if (!match) throw new AuthFailure("malformed");
    const actor = await deps.verifier.verifyAccessToken(match[1]!);
    const tier = await checkStillValid(deps, actor);
    return tier ? { ...actor, tenantTier: tier } : actor;
  } catch (error) {
    if (!(error instanceof AuthFailure)) throw error;
    deps.metrics?.authFailures.inc({ reason: error.reason });
    await deps.security.record({
      type: "auth.failed",
      tenantId: error.verified?.tenantId ?? null,
      actor: null,
      level: error.reason === "revoked" ? "critical" : "warning",
      status: "failed",
      reason: error.reason,
      action: "authenticate",
      details: { ...(error.verified?.subject ? { subject: error.verified.subject } : {}), ...(error.verified?.tokenId ? { tokenId: error.verified.tokenId } : {}) },
      request,
    });
    throw new UnauthenticatedError(INVALID_TOKEN);
  }
}

/**
 * Revocation and tenant state live in the database, so every process sees a revocation at once.
 * The same read gives the tenant's tier (rate limits), so a tier change applies to the next request.
 */
async function checkStillValid(deps: Pick<AppDeps, "db">, actor: Actor): Promise<Tier | undefined> {
  const ids = [actor.tokenId, actor.sessionId ?? actor.tokenId];
  const { rows } = await withTenant(deps.db, actor.tenantId, (trx) =>
    sql<{ status: string | null; tier: Tier | null; revoked: boolean }>`
      select (select status from tenants where tenant_id = ${actor.tenantId}) as status,
             (select tier from tenants where tenant_id = ${actor.tenantId}) as tier,
             exists (select 1 from revoked_tokens where tenant_id = ${actor.tenantId} and token_id in (${ids[0]}, ${ids[1]})) as revoked`.execute(trx),
  );
  const verified = { tenantId: actor.tenantId, subject: actor.subject, tokenId: actor.tokenId };
  if (rows[0]!.revoked) throw new AuthFailure("revoked", verified);
  const platformToken = actor.tenantId === PLATFORM_TENANT && actor.roles.includes("platform");
  if (platformToken) return undefined;
  const status = rows[0]!.status;
  // A tenant that does not exist has no log of its own: that refusal goes to the platform log.
  if (status === null) throw new AuthFailure("unknown-tenant", { subject: actor.subject, tokenId: actor.tokenId });
  if (status !== "active") throw new AuthFailure("unknown-tenant", verified);
  return rows[0]!.tier ?? undefined;
}
