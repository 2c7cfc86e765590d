import { z } from "zod";
import { can, eventMetadata, systemActor, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { parseInput } from "../../domain/validation.ts";
import { ForbiddenError, NotFoundError } from "../../errors.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import type { EventMetadata } from "../../store/events/types.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { githubTokenDecider, githubTokenStream } from "./issueGitHubToken.ts";
import { forgetTokenSecret, readTokenSecret } from "./tokenVault.ts";

const RevokeInput = z.object({ id: z.string().uuid("not a token id") });

type Deps = Pick<AppDeps, "db" | "githubApps" | "tokenCache" | "keyring" | "security" | "metrics" | "now" | "logger">;

/**
 * Revokes a GitHub token Keyplane handed out: at GitHub first (DELETE /installation/token, with the
 * token itself) unless it has expired, then token.revoked for this issue and every other issue of
 * the same token (cached reuses), and the token leaves the cache and the vault.
 * Admins may revoke any; a requester its own.
 */
export async function revokeGitHubToken(deps: Deps, actor: Actor, rawId: unknown, request: RequestMeta = {}) {
  const { id } = parseInput(RevokeInput, { id: rawId });
  const row = await withTenant(deps.db, actor.tenantId, (trx) => trx.selectFrom("github_tokens").selectAll().where("tenant_id", "=", actor.tenantId).where("token_id", "=", id).executeTakeFirst());
  if (!row) throw new NotFoundError("token");
  if (!can(actor, "github-token:revoke") && row.requester !== actor.subject) {
    await deps.security.record({ type: "access.denied", tenantId: actor.tenantId, actor, level: "warning", status: "denied", reason: "not-the-requester", resource: "github-token", action: "github-token:revoke", details: { tokenId: id }, request });
    throw new ForbiddenError("only an admin or the principal that received the token may revoke it");
  }
  if (row.revoked_at) return row;
  const live = new Date(row.expires_at) > deps.now();
  let atGitHub = false;
  if (live) {
    const token = await withTenant(deps.db, actor.tenantId, (trx) => readTokenSecret(trx, deps.keyring, actor.tenantId, row.fingerprint));
    const client = deps.githubApps.client(row.app);
    if (token && client) {
      await client.revokeToken(token);
      atGitHub = true;
    }
  }
  await withTenant(deps.db, actor.tenantId, (trx) => revokeByFingerprint(trx, actor.tenantId, row.fingerprint, live ? "requested" : "expired", atGitHub, eventMetadata(actor, request)));
  deps.tokenCache.forgetFingerprint(row.fingerprint);
  deps.metrics.githubTokenRevocations.inc({ app: row.app, reason: live ? "requested" : "expired" });
  return (await withTenant(deps.db, actor.tenantId, (trx) => trx.selectFrom("github_tokens").selectAll().where("tenant_id", "=", actor.tenantId).where("token_id", "=", id).executeTakeFirst()))!;
}

async function revokeByFingerprint(trx: Tx, tenantId: string, fp: string, reason: string, revokedAtGitHub: boolean, metadata: EventMetadata): Promise<number> {
  const issues = await trx.selectFrom("github_tokens").select("token_id").where("tenant_id", "=", tenantId).where("fingerprint", "=", fp).where("revoked_at", "is", null).execute();
  for (const { token_id } of issues) {
    await decideAndAppend(trx, { tenantId, ...githubTokenStream(token_id), decider: githubTokenDecider, command: { type: "RevokeGitHubToken", reason, revokedAtGitHub }, metadata });
  }
  await forgetTokenSecret(trx, tenantId, fp);
  return issues.length;
}

/**
 * Inside the caller's transaction: every outstanding token of an installation is recorded revoked
 * and leaves the vault (GitHub itself kills them when the app is uninstalled or suspended there).
 * Returns the fingerprints so the caller can drop them from the cache after commit.
 */
export async function revokeInstallationTokens(trx: Tx, args: { tenantId: string; installationId: string; reason: string; revokedAtGitHub: boolean; now: Date; metadata?: EventMetadata }): Promise<string[]> {
  const outstanding = await trx
    .selectFrom("github_tokens")
    .select("fingerprint")
    .distinct()
    .where("tenant_id", "=", args.tenantId)
    .where("installation_id", "=", args.installationId)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", args.now)
    .execute();
  const metadata = args.metadata ?? eventMetadata(systemActor("github-token-revoker", args.tenantId));
  for (const { fingerprint } of outstanding) await revokeByFingerprint(trx, args.tenantId, fingerprint, args.reason, args.revokedAtGitHub, metadata);
  return outstanding.map((o) => o.fingerprint);
}
