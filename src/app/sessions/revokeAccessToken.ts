import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { accessTokenDecider, accessTokenStream } from "../../domain/session/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import type { AppDeps } from "../deps.ts";
import { handleCommand } from "../handleCommand.ts";
import { MAX_TTL_SECONDS } from "./tokenPair.ts";

export const RevokeTokenInput = z.object({ tokenId: z.string().trim().min(1, "must not be empty").max(200) });

/** Revokes an access token by its jti in the caller's tenant; every process refuses it from the next request. */
export async function revokeAccessToken(
  deps: Pick<AppDeps, "db" | "config" | "now">,
  actor: Actor,
  rawInput: z.input<typeof RevokeTokenInput>,
  request: RequestMeta = {},
): Promise<{ tokenId: string; revokedAt: Date }> {
  const { tokenId } = parseInput(RevokeTokenInput, rawInput);
  // Tokens Keyplane did not record (external issuer) stay on the list as long as any token may live.
  const now = deps.now();
  const fallbackExpiry = new Date(now.getTime() + MAX_TTL_SECONDS * 1000).toISOString();
  await handleCommand(deps.db, {
    tenantId: actor.tenantId,
    ...accessTokenStream(tokenId),
    decider: accessTokenDecider,
    command: { type: "RevokeAccessToken", tokenId, reason: "revoked", expiresAt: fallbackExpiry },
    metadata: eventMetadata(actor, request),
    occurredAt: now,
  });
  return { tokenId, revokedAt: deps.now() };
}
