import { z } from "zod";
import { can, eventMetadata, systemActor, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { githubTokenDecider, githubTokenStream } from "../../domain/githubToken/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { ForbiddenError, NotFoundError } from "../../errors.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import type { EventMetadata } from "../../store/events/types.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { findIssuedToken, liveTokensOfInstallation, unrevokedIssuesOf, type IssuedTokenRow } from "../../store/queries/githubTokenQueries.ts";
import { forgetTokenSecret, readTokenSecret } from "./tokenVault.ts";

const RevokeInput = z.object({ id: z.string().uuid("not a token id") });

type Deps = Pick<AppDeps, "db" | "githubApps" | "tokenCache" | "keyring" | "security" | "metrics" | "now" | "logger">;

/**
 * Revokes a GitHub token Keyplane handed out: at GitHub first (DELETE /installation/token, with the
 * token itself) unless it has expired, then token.revoked for this issue and every other issue of
 * the same token (cached reuses), and the token leaves the cache and the vault.
 * Admins may revoke any; a requester its own.
 */
export async function revokeGitHubToken(deps: Deps, actor: Actor, rawId: unknown, request: RequestMeta = {}): Promise<IssuedTokenRow> {
  const { id } = parseInput(RevokeInput, { id: rawId });
  const now = deps.now();
  const mayRevoke = (row: IssuedTokenRow) => can(actor, "github-token:revoke") || row.requester === actor.subject;
  const isLive = (row: IssuedTokenRow) => !row.revoked_at && new Date(row.expires_at) > now;
  // The row and, when this caller will revoke it at GitHub, the token itself: one transaction.
  const { row, token } = await withTenant(deps.db, actor.tenantId, async (trx) => {
    const row = await findIssuedToken(trx, actor.tenantId, id);
    const token = row && mayRevoke(row) && isLive(row) ? await readTokenSecret(trx, deps.keyring, actor.tenantId, row.fingerprint) : null;
    return { row, token };
  });
  if (!row) throw new NotFoundError("token");
  if (!mayRevoke(row)) {
    await deps.security.accessDenied({
      tenantId: actor.tenantId,
      actor,
      reason: "not-the-requester",
      resource: "github-token",
      action: "github-token:revoke",
      details: { tokenId: id },
      request,
    });
    throw new ForbiddenError("only an admin or the principal that received the token may revoke it");
  }
  if (row.revoked_at) return row;
  const live = isLive(row);
  let atGitHub = false;
  const client = deps.githubApps.client(row.app);
  if (token && client) {
    await client.revokeToken(token);
    atGitHub = true;
  }
  // The answer is the row as this transaction's own projection left it.
  const revoked = await withTenant(deps.db, actor.tenantId, async (trx) => {
    await revokeByFingerprint(trx, actor.tenantId, row.fingerprint, live ? "requested" : "expired", atGitHub, eventMetadata(actor, request), deps.now());
    return (await findIssuedToken(trx, actor.tenantId, id))!;
  });
  deps.tokenCache.forgetFingerprint(row.fingerprint);
  deps.metrics.githubTokenRevocations.inc({ app: row.app, reason: live ? "requested" : "expired" });
  return revoked;
}

async function revokeByFingerprint(
  trx: Tx,
  tenantId: string,
  fp: string,
  reason: string,
  revokedAtGitHub: boolean,
  metadata: EventMetadata,
  occurredAt: Date,
): Promise<number> {
  const issues = await unrevokedIssuesOf(trx, tenantId, fp);
  for (const tokenId of issues) {
    await decideAndAppend(trx, {
      tenantId,
      ...githubTokenStream(tokenId),
      decider: githubTokenDecider,
      command: { type: "RevokeGitHubToken", reason, revokedAtGitHub },
      metadata,
      occurredAt,
    });
  }
  await forgetTokenSecret(trx, tenantId, fp);
  return issues.length;
}

/**
 * Inside the caller's transaction: every outstanding token of an installation is recorded revoked
 * and leaves the vault (GitHub itself kills them when the app is uninstalled or suspended there).
 * Returns the fingerprints so the caller can drop them from the cache after commit.
 */
export async function revokeInstallationTokens(
  trx: Tx,
  args: { tenantId: string; installationId: string; reason: string; revokedAtGitHub: boolean; now: Date; metadata?: EventMetadata },
): Promise<string[]> {
  const outstanding = await liveTokensOfInstallation(trx, args.tenantId, args.installationId, args.now);
  const metadata = args.metadata ?? eventMetadata(systemActor("github-token-revoker", args.tenantId));
  for (const { fingerprint } of outstanding) await revokeByFingerprint(trx, args.tenantId, fingerprint, args.reason, args.revokedAtGitHub, metadata, args.now);
  return outstanding.map((o) => o.fingerprint);
}
