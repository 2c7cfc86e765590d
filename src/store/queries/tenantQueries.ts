import type { Selectable } from "kysely";
import type { Tier } from "../../domain/tenant/events.ts";
import { withPlatform, withTenant, type Db, type Tx } from "../db.ts";
import type { TenantsTable } from "../schema.ts";

export type TenantRow = Selectable<TenantsTable>;

export function findTenant(db: Db, tenantId: string): Promise<TenantRow | undefined> {
  return withTenant(db, tenantId, (trx) => findTenantRow(trx, tenantId));
}

/** The same inside a transaction the caller holds (a command answering with the tenant it changed). */
export function findTenantRow(trx: Tx, tenantId: string): Promise<TenantRow | undefined> {
  return trx.selectFrom("tenants").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst();
}

/** The tenant's tier; undefined when there is no such tenant. */
export async function tenantTier(trx: Tx, tenantId: string): Promise<Tier | undefined> {
  const row = await trx.selectFrom("tenants").select("tier").where("tenant_id", "=", tenantId).executeTakeFirst();
  return row?.tier as Tier | undefined;
}

/** Platform operators only: the one read that spans tenants. */
export function listAllTenants(db: Db): Promise<TenantRow[]> {
  return withPlatform(db, (trx) => trx.selectFrom("tenants").selectAll().orderBy("tenant_id").execute());
}
