import type { Selectable } from "kysely";
import type { Tx } from "../db.ts";
import type { InstallationsTable } from "../schema.ts";
import { readKeysetPage, type Page, type TimeIdPosition } from "./keysetPage.ts";

export type InstallationRow = Selectable<InstallationsTable>;

export function findInstallation(trx: Tx, tenantId: string, installationId: string): Promise<InstallationRow | undefined> {
  return trx.selectFrom("installations").selectAll().where("tenant_id", "=", tenantId).where("installation_id", "=", installationId).executeTakeFirst();
}

/** The tenant's live (not revoked) installation of that account on that platform, if any. */
export function findLiveByExternalId(trx: Tx, tenantId: string, platform: string, externalId: string): Promise<InstallationRow | undefined> {
  return trx
    .selectFrom("installations")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("platform", "=", platform as InstallationRow["platform"])
    .where("external_id", "=", externalId)
    .where("status", "<>", "revoked")
    .executeTakeFirst();
}

/** Platform-wide (withPlatform): which tenant holds a GitHub installation, for webhooks and claims. */
export function findGitHubOwner(trx: Tx, externalId: string): Promise<{ tenant_id: string; installation_id: string } | undefined> {
  return trx.selectFrom("github_installation_owners").select(["tenant_id", "installation_id"]).where("external_id", "=", externalId).executeTakeFirst();
}

export interface InstallationFilter {
  platform?: string | null;
  status?: string | null;
}

/** Newest first, keyset-paged on (created_at, installation_id). */
export function listInstallations(
  trx: Tx,
  tenantId: string,
  filter: InstallationFilter,
  page: { first: number; after?: TimeIdPosition },
): Promise<Page<InstallationRow>> {
  let query = trx.selectFrom("installations").selectAll().where("tenant_id", "=", tenantId);
  if (filter.platform) query = query.where("platform", "=", filter.platform as InstallationRow["platform"]);
  if (filter.status) query = query.where("status", "=", filter.status as InstallationRow["status"]);
  return readKeysetPage(query, { columns: ["created_at", "installation_id"], direction: "desc" }, page);
}

/** Platform-wide: rotating credentials that expire within the window and are not waiting out a backoff. */
export function installationsDueForRefresh(
  trx: Tx,
  now: Date,
  windowSeconds: number,
  limit: number,
): Promise<Pick<InstallationRow, "tenant_id" | "installation_id">[]> {
  const horizon = new Date(now.getTime() + windowSeconds * 1000);
  return trx
    .selectFrom("installations")
    .select(["tenant_id", "installation_id"])
    .where("status", "=", "active")
    .where("platform", "in", ["slack", "jira"])
    .where("credentials_expires_at", "is not", null)
    .where("credentials_expires_at", "<", horizon)
    .where((eb) => eb.or([eb("next_refresh_at", "is", null), eb("next_refresh_at", "<=", now)]))
    .orderBy("credentials_expires_at")
    .limit(limit)
    .execute();
}
