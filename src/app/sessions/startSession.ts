import type { Actor, RequestMeta } from "../../auth/actor.ts";
import type { AppDeps } from "../deps.ts";
import { issueAccessToken } from "./issueAccessToken.ts";
import type { IssuedTokens } from "./tokenPair.ts";

/** How long a session's first access token lives (the console refreshes it). */
export const SESSION_ACCESS_TOKEN_TTL_SECONDS = 15 * 60;

/**
 * Exchanges the token presented for a session of the same principal: a refreshable pair with exactly
 * the caller's grant (tenant, subject, kind, roles and scopes), so nothing can be gained by it, and
 * ending when the presented token expires at the latest, so it cannot outlive it either. The
 * scopes are carried over as they are: a scope the token format refuses fails the exchange rather
 * than being dropped (dropping a scope would widen the grant).
 */
export function startSession(deps: Pick<AppDeps, "db" | "config" | "minter" | "now">, actor: Actor, request: RequestMeta = {}): Promise<IssuedTokens> {
  return issueAccessToken(
    deps,
    actor,
    {
      tenantId: actor.tenantId,
      subject: actor.subject,
      kind: actor.kind,
      roles: actor.roles,
      scopes: actor.scopes,
      ttlSeconds: SESSION_ACCESS_TOKEN_TTL_SECONDS,
      refreshable: true,
      refreshUntil: actor.expiresAt,
      issuedVia: "api",
    },
    request,
  );
}
