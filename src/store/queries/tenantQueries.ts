import type { Selectable } from "kysely";
import { withPlatform, withTenant, type Db } from "../db.ts";
import type { TenantsTable } from "../schema.ts";

export type TenantRow = Selectable<TenantsTable>;

export function findTenant(db: Db, tenantId: string): Promise<TenantRow | undefined> {
  return withTenant(db, tenantId, (trx) => trx.selectFrom("tenants").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst());
}

/** Platform operators only: the one read that spans tenants. */
export function listAllTenants(db: Db): Promise<TenantRow[]> {
  return withPlatform(db, (trx) => trx.selectFrom("tenants").selectAll().orderBy("tenant_id").execute());
}
