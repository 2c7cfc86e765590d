import type { Projection } from "./projection.ts";

export const tenantsProjection: Projection = {
  name: "tenants",
  tables: ["tenants"],
  handles: new Set(["tenant.created", "tenant.tier_changed"]),
  async apply(trx, event) {
    switch (event.type) {
      case "tenant.created":
        await trx
          .insertInto("tenants")
          .values({
            tenant_id: event.tenantId,
            name: event.data.name as string,
            tier: event.data.tier as string,
            status: "active",
            version: event.streamVersion,
            created_at: event.occurredAt,
            updated_at: event.occurredAt,
          })
          .execute();
        return;
      case "tenant.tier_changed":
        await trx
          .updateTable("tenants")
          .set({ tier: event.data.to as string, version: event.streamVersion, updated_at: event.occurredAt })
          .where("tenant_id", "=", event.tenantId)
          .execute();
        return;
    }
  },
};
