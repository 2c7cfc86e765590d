import { PLATFORM_TENANT, type Actor, type RequestMeta } from "../auth/actor.ts";
import { AuthFailure } from "../auth/verifyToken.ts";
import type { Tier } from "../domain/tenant/events.ts";
import { TenantSuspendedError, UnauthenticatedError } from "../errors.ts";
import type { AppDeps } from "./deps.ts";

/** One message for every refused token: the reason goes to the audit log, not to the caller. */
export const INVALID_TOKEN = "invalid or expired access token";

/**
 * Turns an Authorization header into an Actor. No header means an anonymous caller (null); a header
 * that does not hold a valid, unrevoked token of a known tenant is refused and recorded.
 */
export async function authenticate(
  deps: Pick<AppDeps, "standing" | "verifier" | "security"> & Partial<Pick<AppDeps, "metrics">>,
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
    await deps.security.authFailed({
      tenantId: error.verified?.tenantId ?? null,
      actor: null,
      level: error.reason === "revoked" ? "critical" : "warning",
      reason: error.reason,
      action: "authenticate",
      details: {
        ...(error.verified?.subject ? { subject: error.verified.subject } : {}),
        ...(error.verified?.tokenId ? { tokenId: error.verified.tokenId } : {}),
      },
      request,
    });
    // A good token of a suspended tenant: saying so tells its holder nothing it may not know.
    throw error.reason === "tenant-suspended" ? new TenantSuspendedError() : new UnauthenticatedError(INVALID_TOKEN);
  }
}

/**
 * Revocation and tenant state live in the database; the authentication cache serves them from memory and
 * keeps them fresh (a revocation is effective in this process when its mutation commits, in others
 * within AUTH_CACHE_REVALIDATE_MS at worst). The same standing gives the tenant's tier (rate limits).
 */
async function checkStillValid(deps: Pick<AppDeps, "standing">, actor: Actor): Promise<Tier | undefined> {
  const standing = await deps.standing.standing(actor);
  const verified = { tenantId: actor.tenantId, subject: actor.subject, tokenId: actor.tokenId };
  if (standing.revoked) throw new AuthFailure("revoked", verified);
  const platformToken = actor.tenantId === PLATFORM_TENANT && actor.roles.includes("platform");
  if (platformToken) return undefined;
  // A tenant that does not exist has no log of its own: that refusal goes to the platform log.
  if (standing.status === null) throw new AuthFailure("unknown-tenant", { subject: actor.subject, tokenId: actor.tokenId });
  if (standing.status === "suspended") throw new AuthFailure("tenant-suspended", verified);
  if (standing.status !== "active") throw new AuthFailure("unknown-tenant", verified);
  return standing.tier ?? undefined;
}
