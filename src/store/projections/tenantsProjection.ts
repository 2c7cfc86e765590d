import type { Projection } from "./projection.ts";

export const tenantsProjection: Projection = {
  name: "tenants",
  tables: ["tenants"],
  handles: new Set(["tenant.created"]),
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
    }
  },
};
