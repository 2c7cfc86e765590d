import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { accessTokenDecider, accessTokenStream, sessionDecider, sessionStream } from "../../domain/session/decider.ts";
import { ConflictError } from "../../errors.ts";
import type { AppDeps } from "../deps.ts";
import { handleCommand } from "../handleCommand.ts";

/**
 * Signs out: revokes the session the token presented came from (its refresh-token family, so every
 * access token minted from it and its refresh token are refused) and the presented access token itself.
 * A token that is not from a session is revoked alone. Every process refuses them from the next request
 * on. Answers whether something was revoked.
 */
export async function endSession(deps: Pick<AppDeps, "db" | "config" | "now">, actor: Actor, request: RequestMeta = {}): Promise<boolean> {
  const metadata = eventMetadata(actor, request);
  let familyRevoked = false;
  // Only a token Keyplane signed names one of its families (an external issuer's `sid` is its own).
  if (actor.sessionId && actor.issuer === deps.config.auth.issuer) {
    const sessionId = actor.sessionId;
    // The family first: should the second append fail, the session is already over.
    familyRevoked = await retryOnConflict(async () => {
      const result = await handleCommand(deps.db, {
        tenantId: actor.tenantId,
        ...sessionStream(sessionId),
        decider: sessionDecider,
        command: { type: "RevokeSession", reason: "revoked" },
        metadata,
        occurredAt: deps.now(),
      });
      return result.decided.length > 0;
    });
  }
  const tokenRevoked = await retryOnConflict(async () => {
    const result = await handleCommand(deps.db, {
      tenantId: actor.tenantId,
      ...accessTokenStream(actor.tokenId),
      decider: accessTokenDecider,
      // A session's access tokens have no stream of their own: the revocation lasts as long as the token.
      command: { type: "RevokeAccessToken", tokenId: actor.tokenId, reason: "revoked", expiresAt: actor.expiresAt.toISOString() },
      metadata,
      occurredAt: deps.now(),
    });
    return result.decided.length > 0;
  });
  return familyRevoked || tokenRevoked;
}

/** A concurrent change of the stream (a refresh of the family, a second sign-out) won the append: decide again. */
async function retryOnConflict<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    return run();
  }
}
