import { z } from "zod";
import { can, eventMetadata, systemActor, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { identityDecider, identityStream } from "../../domain/identity/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { NotFoundError } from "../../errors.ts";
import { refreshUserToken, revokeUserGrant, type GitHubUserTokens } from "../../github/userAuthorization.ts";
import { ProviderError } from "../../providers/provider.ts";
import { withPlatform, withTenant } from "../../store/db.ts";
import type { EventMetadata } from "../../store/events/types.ts";
import { findIdentity, identitiesOfDeletedAgents, type LinkedIdentityRow } from "../../store/queries/identityQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { linkingApp, userEndpoints } from "./githubUserApp.ts";
import { lockIdentity } from "./identityTokens.ts";
import { forgetIdentityTokens, readIdentityTokens } from "./identityVault.ts";

export const IdentityIdInput = z.object({ id: z.string().uuid("not an identity id") });

/**
 * An identity the caller may act on: its own, or (identity:manage) any of its tenant's. Anything else,
 * including another tenant's id, is NOT_FOUND: nothing tells them apart.
 */
export async function loadIdentity(deps: Pick<AppDeps, "db">, actor: Actor, rawId: unknown): Promise<LinkedIdentityRow> {
  const { id } = parseInput(IdentityIdInput, { id: rawId });
  const row = await withTenant(deps.db, actor.tenantId, (trx) => findIdentity(trx, actor.tenantId, id));
  if (!row || (row.subject !== actor.subject && !can(actor, "identity:manage"))) throw new NotFoundError("linked identity");
  return row;
}

type UnlinkDeps = Pick<AppDeps, "db" | "config" | "keyring" | "githubApps" | "logger" | "now">;

/**
 * Unlinks an identity: GitHub revokes the user's grant of the app (every token and refresh token it
 * issued to that user dies), then the stored tokens are deleted beside identity.unlinked. When GitHub
 * cannot be reached the unlink is refused (PROVIDER_ERROR, retry): a grant left alive at GitHub
 * without anyone knowing is worse than a retry.
 */
export async function unlinkIdentity(deps: UnlinkDeps, actor: Actor, rawId: unknown, request: RequestMeta = {}): Promise<LinkedIdentityRow> {
  const row = await loadIdentity(deps, actor, rawId);
  const unlinked = await unlink(deps, actor.tenantId, row.identity_id, eventMetadata(actor, request), "unlinked");
  if (!unlinked) throw new NotFoundError("linked identity");
  return unlinked;
}

/**
 * The identities of deleted agents (deleteAgent, or the sweep of ephemeral agents), unlinked by the
 * refresh sweep: the grant is revoked at GitHub where it can be, and the tokens are deleted whatever
 * GitHub says (the agent is gone). Returns how many.
 */
export async function unlinkDeletedAgentsIdentities(deps: UnlinkDeps, limit = 100): Promise<number> {
  const orphans = await withPlatform(deps.db, (trx) => identitiesOfDeletedAgents(trx, limit));
  let done = 0;
  for (const { tenant_id: tenantId, identity_id: identityId } of orphans) {
    const metadata = eventMetadata(systemActor("identity-reaper", tenantId));
    if (await unlink(deps, tenantId, identityId, metadata, "principal-deleted")) done++;
  }
  return done;
}

async function unlink(
  deps: UnlinkDeps,
  tenantId: string,
  identityId: string,
  metadata: EventMetadata,
  reason: "unlinked" | "principal-deleted",
): Promise<LinkedIdentityRow | undefined> {
  return withTenant(deps.db, tenantId, async (trx) => {
    await lockIdentity(trx, tenantId, identityId);
    const current = await findIdentity(trx, tenantId, identityId);
    if (!current) return undefined;
    const tokens = await readIdentityTokens(trx, deps.keyring, tenantId, identityId, true);
    let revokedAtGitHub = false;
    if (tokens) {
      try {
        revokedAtGitHub = await revokeGrant(deps, current.app, tokens);
      } catch (error) {
        // A deleted principal's tokens go whatever GitHub says; a principal asking to unlink retries.
        if (reason === "unlinked") throw error;
        deps.logger.warn({ tenantId, identityId, code: (error as { providerCode?: string }).providerCode }, "revoking a deleted agent's GitHub grant failed");
      }
    }
    await forgetIdentityTokens(trx, tenantId, identityId);
    await decideAndAppend(trx, {
      tenantId,
      ...identityStream(identityId),
      decider: identityDecider,
      command: { type: "UnlinkIdentity", identityId, revokedAtGitHub, reason },
      metadata,
      occurredAt: deps.now(),
    });
    deps.logger.info({ tenantId, identityId, revokedAtGitHub, reason }, "identity unlinked");
    return current;
  });
}

/** Revokes the user's grant; an expired user token names no grant, so its live refresh token gets one that does. */
async function revokeGrant(deps: UnlinkDeps, appName: string, tokens: GitHubUserTokens): Promise<boolean> {
  const app = linkingApp(deps, appName);
  const endpoints = userEndpoints(deps);
  if (await revokeUserGrant(endpoints, app, tokens.accessToken)) return true;
  if (!tokens.refreshToken || (tokens.refreshExpiresAt && tokens.refreshExpiresAt <= deps.now())) return false;
  const fresh = await refreshUserToken(endpoints, app, tokens.refreshToken, deps.now).catch((error: unknown) => {
    if (error instanceof ProviderError && error.kind === "rejected") return undefined; // the grant is gone already
    throw error;
  });
  return fresh ? revokeUserGrant(endpoints, app, fresh.accessToken) : false;
}
