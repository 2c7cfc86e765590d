import { randomUUID } from "node:crypto";
import { eventMetadata, makeActor, type RequestMeta } from "../../auth/actor.ts";
import { AuthFailure } from "../../auth/verifyToken.ts";
import { SESSION_INVALID } from "../../domain/session/decide.ts";
import { sessionDecider, sessionStream } from "../../domain/session/decider.ts";
import { ConflictError, TenantSuspendedError, UnauthenticatedError } from "../../errors.ts";
import type { AppDeps } from "../deps.ts";
import { handleCommand } from "../handleCommand.ts";
import { mintPair, type IssuedTokens } from "./tokenPair.ts";

/**
 * Spends a refresh token for a new pair. A token that was already spent revokes its whole family and
 * every access token minted from it, and is recorded as a critical security event.
 */
export async function refreshSession(
  deps: Pick<AppDeps, "db" | "config" | "minter" | "verifier" | "security" | "standing" | "now">,
  refreshToken: string,
  request: RequestMeta = {},
): Promise<IssuedTokens> {
  let presented;
  try {
    presented = await deps.verifier.verifyRefreshToken(refreshToken);
  } catch (error) {
    if (!(error instanceof AuthFailure)) throw error;
    await deps.security.authFailed({
      tenantId: error.verified?.tenantId ?? null,
      actor: null,
      reason: error.reason,
      action: "refresh-session",
      request,
    });
    throw new UnauthenticatedError(SESSION_INVALID);
  }
  // A suspended tenant's sessions do not renew (the authentication cache answers from memory).
  const holder = makeActor({
    kind: presented.kind,
    subject: presented.subject,
    tenantId: presented.tenantId,
    roles: [],
    scopes: [],
    tokenId: presented.tokenId,
    sessionId: presented.familyId,
    issuer: deps.config.auth.issuer,
    expiresAt: deps.now(),
  });
  if ((await deps.standing.standing(holder)).status === "suspended") {
    await deps.security.authFailed({ tenantId: presented.tenantId, actor: null, reason: "tenant-suspended", action: "refresh-session", request });
    throw new TenantSuspendedError();
  }
  const refreshTokenId = randomUUID();
  const accessTokenId = randomUUID();
  const run = () => {
    const at = deps.now();
    return handleCommand(deps.db, {
      tenantId: presented.tenantId,
      ...sessionStream(presented.familyId),
      decider: sessionDecider,
      command: { type: "RefreshSession", presentedRefreshTokenId: presented.tokenId, refreshTokenId, accessTokenId, now: at.toISOString() },
      metadata: eventMetadata({ subject: presented.subject, kind: presented.kind, roles: [], tokenId: presented.tokenId }, request),
      occurredAt: at,
    });
  };
  let result;
  try {
    result = await run();
  } catch (error) {
    // A concurrent refresh of the same family won the append; deciding again sees the token as spent.
    if (!(error instanceof ConflictError)) throw error;
    result = await run();
  }
  const state = result.state;
  if (!state.exists) throw new UnauthenticatedError(SESSION_INVALID);
  if (result.decided[0]?.type === "session.revoked") {
    await deps.security.authFailed({
      tenantId: presented.tenantId,
      actor: null,
      level: "critical",
      reason: "refresh-token-reuse",
      action: "refresh-session",
      details: { familyId: presented.familyId, subject: presented.subject },
      request,
    });
    throw new UnauthenticatedError(SESSION_INVALID);
  }
  const now = deps.now();
  const ttl = state.grant.kind === "user" ? deps.config.auth.userTokenTtl : deps.config.auth.serviceTokenTtl;
  return mintPair(
    deps,
    presented.tenantId,
    presented.familyId,
    state.grant,
    accessTokenId,
    refreshTokenId,
    now,
    new Date(now.getTime() + ttl * 1000),
    new Date(state.expiresAt),
  );
}
