import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { installationDecider, installationStream } from "../../domain/installation/decider.ts";
import { ProviderError } from "../../providers/provider.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import { findInstallation, type InstallationRow } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { providerOf } from "./startInstallation.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { InstallationIdInput, loadInstallation } from "./installationCredentials.ts";
import { parseInput } from "../../domain/validation.ts";
import { forgetCredentials, readCredentials } from "./vault.ts";
import { revokeInstallationTokens } from "../githubTokens/revokeGitHubToken.ts";
import { readTokenSecret } from "../githubTokens/tokenVault.ts";
import { liveTokensOfInstallation } from "../../store/queries/githubTokenQueries.ts";

type Deps = Pick<AppDeps, "db" | "keyring" | "providers" | "githubApps" | "logger" | "tokenCache" | "now">;

/** Decides and appends one command on the installation, then reads it back, in one tenant transaction. */
async function run(
  deps: Deps,
  actor: Actor,
  installationId: string,
  command: Parameters<typeof installationDecider.decide>[0],
  request: RequestMeta,
  alongside?: (trx: Tx) => Promise<void>,
): Promise<InstallationRow> {
  return withTenant(deps.db, actor.tenantId, async (trx) => {
    await alongside?.(trx);
    await decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...installationStream(installationId),
      decider: installationDecider,
      command,
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
    return (await findInstallation(trx, actor.tenantId, installationId))!;
  });
}

/** Keyplane stops handing out this installation's credentials until an admin resumes it. */
export async function suspendInstallation(deps: Deps, actor: Actor, input: { id: unknown; reason?: string | null }, request: RequestMeta = {}) {
  const row = await loadInstallation(deps, actor, input.id);
  // GitHub keeps honouring tokens of an installation only Keyplane suspended: revoke them there too.
  const revokedAtGitHub = row.platform === "github" ? await revokeLiveTokensAtGitHub(deps, actor.tenantId, row) : false;
  const fingerprints: string[] = [];
  const done = await run(
    deps,
    actor,
    row.installation_id,
    { type: "SuspendInstallation", by: "tenant", reason: input.reason == null ? undefined : truncateWellFormed(input.reason, 500) },
    request,
    async (trx) => {
      fingerprints.push(
        ...(await revokeInstallationTokens(trx, {
          tenantId: actor.tenantId,
          installationId: row.installation_id,
          reason: "installation_suspended",
          revokedAtGitHub,
          now: deps.now(),
          metadata: eventMetadata(actor, request),
        })),
      );
    },
  );
  for (const fp of fingerprints) deps.tokenCache.forgetFingerprint(fp);
  return done;
}

/** One transaction: the decider answers NOT_FOUND for an installation the tenant does not have. */
export async function resumeInstallation(deps: Deps, actor: Actor, input: { id: unknown }, request: RequestMeta = {}) {
  const { id } = parseInput(InstallationIdInput, { id: input.id });
  return run(deps, actor, id, { type: "ResumeInstallation", by: "tenant" }, request);
}

/**
 * Disconnects an installation: first at the provider where it can be (GitHub uninstalls the app and
 * its installation tokens die with it; Slack's auth.revoke kills the token and its refresh token),
 * then the vault row is deleted and installation.revoked recorded. Atlassian has no revocation
 * endpoint: Keyplane forgets the grant. A provider that already considers the grant gone counts as revoked.
 */
export async function revokeInstallation(deps: Deps, actor: Actor, input: { id: unknown }, request: RequestMeta = {}) {
  const row = await loadInstallation(deps, actor, input.id);
  if (row.status === "revoked") return row;
  const provider = providerOf(deps, row);
  let providerRevoked = false;
  if (provider && row.platform !== "jira") {
    const stored =
      row.platform === "github"
        ? null
        : await withTenant(deps.db, actor.tenantId, (trx) => readCredentials(trx, deps.keyring, actor.tenantId, row.installation_id));
    try {
      await provider.revoke({ externalId: row.external_id, accessToken: stored?.credentials.accessToken });
      providerRevoked = true;
    } catch (error) {
      if (!(error instanceof ProviderError) || error.kind !== "rejected") throw error;
      deps.logger.info({ installationId: row.installation_id, providerCode: error.providerCode }, "provider already considers the grant gone");
    }
  }
  // Uninstalling at GitHub kills the installation's tokens there; Keyplane records each one revoked.
  const fingerprints: string[] = [];
  const done = await run(deps, actor, row.installation_id, { type: "RevokeInstallation", by: "tenant", providerRevoked }, request, async (trx) => {
    await forgetCredentials(trx, actor.tenantId, row.installation_id);
    fingerprints.push(
      ...(await revokeInstallationTokens(trx, {
        tenantId: actor.tenantId,
        installationId: row.installation_id,
        reason: "installation_revoked",
        revokedAtGitHub: providerRevoked,
        now: deps.now(),
        metadata: eventMetadata(actor, request),
      })),
    );
  });
  for (const fp of fingerprints) deps.tokenCache.forgetFingerprint(fp);
  return done;
}

/** Best effort, token by token: DELETE /installation/token for every live token of the installation. */
async function revokeLiveTokensAtGitHub(deps: Deps, tenantId: string, row: InstallationRow): Promise<boolean> {
  const live = await withTenant(deps.db, tenantId, async (trx) => {
    const rows = await liveTokensOfInstallation(trx, tenantId, row.installation_id, deps.now());
    return Promise.all(rows.map(async (r) => ({ app: r.app, token: await readTokenSecret(trx, deps.keyring, tenantId, r.fingerprint) })));
  });
  const results = await Promise.allSettled(live.map(({ app, token }) => (token ? deps.githubApps.client(app)?.revokeToken(token) : undefined)));
  const failed = results.filter((r) => r.status === "rejected").length;
  if (failed)
    deps.logger.warn({ tenantId, installationId: row.installation_id, failed }, "some tokens could not be revoked at GitHub; they expire within the hour");
  return failed === 0;
}
