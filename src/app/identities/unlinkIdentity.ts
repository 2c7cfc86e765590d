import { z } from "zod";
import { can, eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { identityDecider, identityStream } from "../../domain/identity/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { NotFoundError } from "../../errors.ts";
import { refreshUserToken, revokeUserGrant } from "../../github/userAuthorization.ts";
import { ProviderError } from "../../providers/provider.ts";
import { withTenant } from "../../store/db.ts";
import { findIdentity, type LinkedIdentityRow } from "../../store/queries/identityQueries.ts";
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

/**
 * Unlinks an identity: GitHub revokes the user's grant of the app (every token and refresh token it
 * issued to that user dies), then the stored tokens are deleted beside identity.unlinked. When GitHub
 * cannot be reached the unlink is refused (PROVIDER_ERROR, retry): a grant left alive at GitHub
 * without anyone knowing is worse than a retry.
 */
export async function unlinkIdentity(
  deps: Pick<AppDeps, "db" | "config" | "keyring" | "githubApps" | "logger" | "now">,
  actor: Actor,
  rawId: unknown,
  request: RequestMeta = {},
): Promise<LinkedIdentityRow> {
  const row = await loadIdentity(deps, actor, rawId);
  const tenantId = actor.tenantId;
  return withTenant(deps.db, tenantId, async (trx) => {
    await lockIdentity(trx, tenantId, row.identity_id);
    const current = await findIdentity(trx, tenantId, row.identity_id);
    if (!current) throw new NotFoundError("linked identity");
    const tokens = await readIdentityTokens(trx, deps.keyring, tenantId, row.identity_id, true);
    let revokedAtGitHub = false;
    if (tokens) {
      const app = linkingApp(deps, current.app);
      const endpoints = userEndpoints(deps);
      revokedAtGitHub = await revokeUserGrant(endpoints, app, tokens.accessToken);
      // An expired user token names no grant: its live refresh token gets one that does.
      if (!revokedAtGitHub && tokens.refreshToken && (!tokens.refreshExpiresAt || tokens.refreshExpiresAt > deps.now())) {
        const fresh = await refreshUserToken(endpoints, app, tokens.refreshToken, deps.now).catch((error: unknown) => {
          if (error instanceof ProviderError && error.kind === "rejected") return undefined; // the grant is gone already
          throw error;
        });
        if (fresh) revokedAtGitHub = await revokeUserGrant(endpoints, app, fresh.accessToken);
      }
    }
    await forgetIdentityTokens(trx, tenantId, row.identity_id);
    await decideAndAppend(trx, {
      tenantId,
      ...identityStream(row.identity_id),
      decider: identityDecider,
      command: { type: "UnlinkIdentity", identityId: row.identity_id, revokedAtGitHub },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
    deps.logger.info({ tenantId, identityId: row.identity_id, revokedAtGitHub }, "identity unlinked");
    return current;
  });
}
