import type { Selectable } from "kysely";
import type { Tx } from "../db.ts";
import type { GitHubTokensTable, TokenPoliciesTable } from "../schema.ts";
import { readKeysetPage, type Page, type TimeIdPosition } from "./keysetPage.ts";

/** A GitHub token Keyplane handed out (one row per issue, a cached reuse included): never the token. */
export type IssuedTokenRow = Selectable<GitHubTokensTable>;
export type TokenPolicyRow = Selectable<TokenPoliciesTable>;

export interface IssuedTokenFilter {
  app?: string | null;
  installationId?: string | null;
  requester?: string | null;
  status?: "active" | "revoked" | "expired" | null;
}

export function findIssuedToken(trx: Tx, tenantId: string, tokenId: string): Promise<IssuedTokenRow | undefined> {
  return trx.selectFrom("github_tokens").selectAll().where("tenant_id", "=", tenantId).where("token_id", "=", tokenId).executeTakeFirst();
}

/** Newest first, keyset-paged on (issued_at, token_id); `now` tells active from expired. */
export function listIssuedTokens(
  trx: Tx,
  tenantId: string,
  filter: IssuedTokenFilter,
  page: { first: number; after?: TimeIdPosition; now: Date },
): Promise<Page<IssuedTokenRow>> {
  let q = trx.selectFrom("github_tokens").selectAll().where("tenant_id", "=", tenantId);
  if (filter.app) q = q.where("app", "=", filter.app);
  if (filter.installationId) q = q.where("installation_id", "=", filter.installationId);
  if (filter.requester) q = q.where("requester", "=", filter.requester);
  if (filter.status === "revoked") q = q.where("revoked_at", "is not", null);
  if (filter.status === "active") q = q.where("revoked_at", "is", null).where("expires_at", ">", page.now);
  if (filter.status === "expired") q = q.where("revoked_at", "is", null).where("expires_at", "<=", page.now);
  return readKeysetPage(q, { columns: ["issued_at", "token_id"], direction: "desc" }, page);
}

/** The issues of one token (its first issue and its cached reuses) not yet recorded revoked. */
export async function unrevokedIssuesOf(trx: Tx, tenantId: string, fingerprint: string): Promise<string[]> {
  const rows = await trx
    .selectFrom("github_tokens")
    .select("token_id")
    .where("tenant_id", "=", tenantId)
    .where("fingerprint", "=", fingerprint)
    .where("revoked_at", "is", null)
    .execute();
  return rows.map((r) => r.token_id);
}

/** The distinct tokens of an installation that are neither revoked nor expired, with the app that minted each. */
export function liveTokensOfInstallation(trx: Tx, tenantId: string, installationId: string, now: Date): Promise<Array<{ fingerprint: string; app: string }>> {
  return trx
    .selectFrom("github_tokens")
    .select(["fingerprint", "app"])
    .distinct()
    .where("tenant_id", "=", tenantId)
    .where("installation_id", "=", installationId)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", now)
    .execute();
}

export function findTokenPolicy(trx: Tx, tenantId: string, name: string): Promise<TokenPolicyRow | undefined> {
  return trx.selectFrom("token_policies").selectAll().where("tenant_id", "=", tenantId).where("name", "=", name).executeTakeFirst();
}

/** The tenant's token policies by name, those of one app when given. */
export function listTokenPolicies(trx: Tx, tenantId: string, app?: string | null): Promise<TokenPolicyRow[]> {
  let q = trx.selectFrom("token_policies").selectAll().where("tenant_id", "=", tenantId);
  if (app) q = q.where("app", "=", app);
  return q.orderBy("name").execute();
}
