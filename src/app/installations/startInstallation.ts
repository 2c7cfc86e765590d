import { createHash, randomBytes, randomUUID } from "node:crypto";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { InstallationRequested } from "../../domain/installation/events.ts";
import { BadInputError } from "../../errors.ts";
import { isPlatform, type InstallationProvider, type Platform } from "../../providers/provider.ts";
import { newPkceVerifier, pkceChallenge } from "../../providers/registry.ts";
import { withTenant } from "../../store/db.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import { fingerprint } from "../../store/events/hashing.ts";
import type { AppDeps } from "../deps.ts";

export const hashState = (state: string) => createHash("sha256").update(state).digest("hex");
export const callbackUrl = (deps: Pick<AppDeps, "config">, platform: Platform) => `${deps.config.providers.publicUrl}/oauth/callback/${platform}`;
export const stateAad = (requestId: string) => `oauth_state:${requestId}:code_verifier`;

/** The configured provider for a platform named by a caller, or a clear BAD_USER_INPUT. */
export function providerFor(deps: Pick<AppDeps, "providers">, platform: string): InstallationProvider {
  if (!isPlatform(platform)) throw new BadInputError(`platform: unknown platform ${JSON.stringify(platform.slice(0, 40))} (github, slack or jira)`, "platform");
  const provider = deps.providers[platform];
  if (!provider) throw new BadInputError(`platform: ${platform} is not configured on this Keyplane`, "platform");
  return provider;
}

export interface StartedInstallation {
  authorizationUrl: string;
  requestId: string;
  expiresAt: Date;
}

/**
 * Begins an install: a single-use OAuth state (32 random bytes, only its hash stored) bound to the
 * tenant, the actor and, for PKCE providers, the encrypted code verifier; recorded as
 * installation.requested in the tenant's log.
 */
export async function startInstallation(
  deps: Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "now">,
  actor: Actor,
  platform: string,
  request: RequestMeta = {},
): Promise<StartedInstallation> {
  const provider = providerFor(deps, platform);
  const state = randomBytes(32).toString("base64url");
  const requestId = randomUUID();
  const verifier = provider.usesPkce ? newPkceVerifier() : undefined;
  const now = deps.now();
  const expiresAt = new Date(now.getTime() + deps.config.installations.stateTtlSeconds * 1000);
  await withTenant(deps.db, actor.tenantId, async (trx) => {
    await trx
      .insertInto("oauth_states")
      .values({
        tenant_id: actor.tenantId,
        request_id: requestId,
        state_hash: hashState(state),
        platform: provider.platform,
        actor: JSON.stringify(eventMetadata(actor).actor),
        key_id: verifier ? deps.keyring.currentKeyId : null,
        code_verifier: verifier ? deps.keyring.encrypt(verifier, stateAad(requestId)) : null,
        created_at: now,
        expires_at: expiresAt,
      })
      .execute();
    await appendEvents(trx, {
      tenantId: actor.tenantId,
      streamType: "installation_request",
      streamId: requestId,
      expectedVersion: 0,
      events: [InstallationRequested({ requestId, platform: provider.platform, stateFingerprint: fingerprint(state), expiresAt: expiresAt.toISOString() })],
      metadata: eventMetadata(actor, request),
    });
  });
  const authorizationUrl = provider.authorizationUrl({
    state,
    redirectUri: callbackUrl(deps, provider.platform),
    ...(verifier ? { codeChallenge: pkceChallenge(verifier) } : {}),
  });
  return { authorizationUrl, requestId, expiresAt };
}
