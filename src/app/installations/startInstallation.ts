import { randomUUID } from "node:crypto";
import { createOAuthState } from "../oauthStates.ts";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { fingerprint } from "../../crypto/fingerprint.ts";
import { InstallationRequested } from "../../domain/installation/events.ts";
import { BadInputError } from "../../errors.ts";
import { isPlatform, type InstallationProvider, type Platform } from "../../providers/provider.ts";
import { newPkceVerifier, pkceChallenge } from "../../providers/registry.ts";
import { withTenant } from "../../store/db.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import type { AppDeps } from "../deps.ts";

export const callbackUrl = (deps: Pick<AppDeps, "config">, platform: Platform) => `${deps.config.providers.publicUrl}/oauth/callback/${platform}`;

/**
 * The configured provider for a platform (and, for GitHub, a named app: the default app when none is
 * named) as a caller named it, or a clear BAD_USER_INPUT.
 */
export function providerFor(
  deps: Pick<AppDeps, "providers" | "githubApps">,
  platform: string,
  app?: string | null,
): { provider: InstallationProvider; app?: string } {
  if (!isPlatform(platform)) throw new BadInputError(`platform: unknown platform ${JSON.stringify(platform.slice(0, 40))} (github, slack or jira)`, "platform");
  if (platform === "github") {
    const name = app ?? deps.githubApps.defaultApp;
    const provider = name ? deps.githubApps.provider(name) : undefined;
    if (!provider)
      throw new BadInputError(
        app ? `app: no GitHub App named ${JSON.stringify(app.slice(0, 40))} is configured` : "platform: github is not configured on this Keyplane",
        app ? "app" : "platform",
      );
    return { provider, app: name };
  }
  if (app) throw new BadInputError("app: only GitHub installations name an app", "app");
  const provider = deps.providers[platform];
  if (!provider) throw new BadInputError(`platform: ${platform} is not configured on this Keyplane`, "platform");
  return { provider };
}

/** The provider an existing installation was made with (undefined when that is no longer configured). */
export function providerOf(deps: Pick<AppDeps, "providers" | "githubApps">, row: { platform: Platform; app: string | null }): InstallationProvider | undefined {
  if (row.platform !== "github") return deps.providers[row.platform];
  const name = row.app ?? deps.githubApps.defaultApp;
  return name ? deps.githubApps.provider(name) : undefined;
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
  deps: Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "now">,
  actor: Actor,
  platform: string,
  request: RequestMeta = {},
  app?: string | null,
): Promise<StartedInstallation> {
  const { provider, app: appName } = providerFor(deps, platform, app);
  const requestId = randomUUID();
  const verifier = provider.usesPkce ? newPkceVerifier() : undefined;
  const now = deps.now();
  const expiresAt = new Date(now.getTime() + deps.config.installations.stateTtlSeconds * 1000);
  const state = await withTenant(deps.db, actor.tenantId, async (trx) => {
    const state = await createOAuthState(trx, deps, {
      actor,
      requestId,
      platform: provider.platform,
      app: appName ?? null,
      purpose: "install",
      verifier,
      now,
      expiresAt,
    });
    await appendEvents(trx, {
      tenantId: actor.tenantId,
      streamType: "installation_request",
      streamId: requestId,
      expectedVersion: 0,
      events: [InstallationRequested({ requestId, platform: provider.platform, stateFingerprint: fingerprint(state), expiresAt: expiresAt.toISOString() })],
      metadata: eventMetadata(actor, request),
      occurredAt: now,
    });
    return state;
  });
  const authorizationUrl = provider.authorizationUrl({
    state,
    redirectUri: callbackUrl(deps, provider.platform),
    ...(verifier ? { codeChallenge: pkceChallenge(verifier) } : {}),
  });
  return { authorizationUrl, requestId, expiresAt };
}
