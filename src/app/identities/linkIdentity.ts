import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { fingerprint } from "../../crypto/fingerprint.ts";
import { identityDecider, identityLinkRequestStream, identityStream } from "../../domain/identity/decider.ts";
import { IdentityLinkRequested } from "../../domain/identity/events.ts";
import { exchangeUserCode, githubUser, revokeUserGrant, userAuthorizationUrl } from "../../github/userAuthorization.ts";
import { ProviderError } from "../../providers/provider.ts";
import { newPkceVerifier, pkceChallenge } from "../../providers/registry.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import type { EventMetadata } from "../../store/events/types.ts";
import { findIdentity, findPrincipalIdentity, type LinkedIdentityRow } from "../../store/queries/identityQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { acceptOAuthState, createOAuthState, refusalOf, stateAad } from "../oauthStates.ts";
import { linkCallbackUrl, linkingApp, userEndpoints } from "./githubUserApp.ts";
import { readIdentityTokens, storeIdentityTokens } from "./identityVault.ts";

export interface StartedIdentityLink {
  authorizationUrl: string;
  requestId: string;
  expiresAt: Date;
}

/**
 * Begins linking the caller's own GitHub account: a single-use state (only its hash stored) bound to
 * the tenant and the caller, with the PKCE verifier encrypted beside it; recorded as
 * identity.link_requested. Whoever opens the URL signs in at GitHub as the account to link.
 */
export async function startIdentityLink(
  deps: Pick<AppDeps, "db" | "config" | "keyring" | "githubApps" | "now">,
  actor: Actor,
  appName?: string | null,
  request: RequestMeta = {},
): Promise<StartedIdentityLink> {
  const app = linkingApp(deps, appName);
  const requestId = randomUUID();
  const verifier = newPkceVerifier();
  const now = deps.now();
  const expiresAt = new Date(now.getTime() + deps.config.installations.stateTtlSeconds * 1000);
  const state = await withTenant(deps.db, actor.tenantId, async (trx) => {
    const state = await createOAuthState(trx, deps, { actor, requestId, platform: "github", app: app.name, purpose: "link", verifier, now, expiresAt });
    await appendEvents(trx, {
      tenantId: actor.tenantId,
      ...identityLinkRequestStream(requestId),
      expectedVersion: 0,
      events: [
        IdentityLinkRequested({
          requestId,
          subject: actor.subject,
          provider: "github",
          app: app.name,
          stateFingerprint: fingerprint(state),
          expiresAt: expiresAt.toISOString(),
        }),
      ],
      metadata: eventMetadata(actor, request),
      occurredAt: now,
    });
    return state;
  });
  const authorizationUrl = userAuthorizationUrl(userEndpoints(deps), app, {
    state,
    redirectUri: linkCallbackUrl(deps),
    codeChallenge: pkceChallenge(verifier),
  });
  return { authorizationUrl, requestId, expiresAt };
}

export interface CompletedIdentityLink {
  tenantId: string;
  identity: LinkedIdentityRow;
  outcome: "linked" | "relinked";
}

type CompleteDeps = Pick<AppDeps, "db" | "config" | "keyring" | "githubApps" | "security" | "logger" | "now">;

/**
 * GitHub's redirect back from the consent: consumes the state exactly once, exchanges the code with
 * the PKCE verifier, asks GitHub who the token acts as, and stores the tokens encrypted beside
 * identity.linked, as the principal that started the link. A bad state stores nothing but a security event.
 */
export async function completeIdentityLink(deps: CompleteDeps, query: URLSearchParams, request: RequestMeta = {}): Promise<CompletedIdentityLink> {
  const refuse = refusalOf(deps, request, { resource: "identity", action: "oauth-link-callback", platform: "github" });
  const consumed = await acceptOAuthState(deps, query.get("state"), { purpose: "link", platform: "github", again: "linking" }, refuse);
  const error = query.get("error");
  if (error) throw new ProviderError("github", error === "access_denied" ? "access_denied" : "authorization_failed", "rejected");
  const code = query.get("code");
  if (!code) throw new ProviderError("github", "missing_code", "invalid");

  const app = linkingApp(deps, consumed.app);
  const endpoints = userEndpoints(deps);
  const codeVerifier = deps.keyring.decrypt(consumed.code_verifier!, stateAad(consumed.request_id));
  const tokens = await exchangeUserCode(endpoints, app, { code, redirectUri: linkCallbackUrl(deps), codeVerifier }, deps.now);
  const user = await githubUser(endpoints, tokens.accessToken);

  const tenantId = consumed.tenant_id;
  const principal = consumed.actor;
  const metadata: EventMetadata = { actor: principal, ...Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined)) };
  const done = await withTenant(deps.db, tenantId, async (trx) => {
    // One identity per principal and app: two links completing at once take turns.
    await lockPrincipal(trx, tenantId, principal.subject, app.name);
    const existing = await findPrincipalIdentity(trx, tenantId, principal.subject, app.name);
    const identityId = existing?.identity_id ?? randomUUID();
    // Linking another account replaces this one: its grant is revoked once the new one is stored.
    const replaced = existing && existing.account_id !== user.id ? await readIdentityTokens(trx, deps.keyring, tenantId, identityId) : null;
    const now = deps.now();
    const facts = await storeIdentityTokens(trx, deps.keyring, tenantId, identityId, tokens, now);
    await decideAndAppend(trx, {
      tenantId,
      ...identityStream(identityId),
      decider: identityDecider,
      command: {
        type: "LinkIdentity",
        data: {
          identityId,
          subject: principal.subject,
          subjectKind: principal.kind,
          provider: "github",
          app: app.name,
          accountId: user.id,
          login: user.login,
          requestId: consumed.request_id,
          ...facts,
        },
      },
      metadata,
      occurredAt: now,
    });
    deps.logger.info({ tenantId, identityId, app: app.name, login: user.login }, existing ? "identity linked again" : "identity linked");
    const identity = (await findIdentity(trx, tenantId, identityId))!;
    return { result: { tenantId, identity, outcome: existing ? ("relinked" as const) : ("linked" as const) }, replaced };
  });
  if (done.replaced) {
    // Best effort: the previous account's tokens are no longer stored anywhere, and expire in hours.
    await revokeUserGrant(endpoints, app, done.replaced.accessToken).catch((error: unknown) =>
      deps.logger.warn(
        { tenantId, identityId: done.result.identity.identity_id, code: (error as { providerCode?: string }).providerCode },
        "revoking the replaced account's grant failed",
      ),
    );
  }
  return done.result;
}

async function lockPrincipal(trx: Tx, tenantId: string, subject: string, app: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`keyplane:identity-principal:${tenantId}:${subject}:${app}`}, 0))`.execute(trx);
}
