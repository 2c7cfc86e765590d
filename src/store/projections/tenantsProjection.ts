import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

export const tenantsProjection: Projection = {
  name: "tenants",
  tables: ["tenants"],
  handles: new Set([
    "tenant.created",
    "tenant.tier_changed",
    "tenant.suspended",
    "tenant.resumed",
    "tenant.retention_set",
    "tenant.legal_hold_set",
    "tenant.legal_hold_released",
  ]),
  project(event) {
    switch (event.type) {
      case "tenant.created":
        return [
          db.insertInto("tenants").values({
            tenant_id: event.tenantId,
            name: event.data.name as string,
            tier: event.data.tier as string,
            status: "active",
            version: event.streamVersion,
            created_at: event.occurredAt,
            updated_at: event.occurredAt,
          }),
        ];
      case "tenant.tier_changed":
        return [
          db
            .updateTable("tenants")
            .set({ tier: event.data.to as string, version: event.streamVersion, updated_at: event.occurredAt })
            .where("tenant_id", "=", event.tenantId),
        ];
      case "tenant.suspended":
        return [
          db
            .updateTable("tenants")
            .set({
              status: "suspended",
              suspended_at: event.occurredAt,
              suspension_reason: event.data.reason as string,
              version: event.streamVersion,
              updated_at: event.occurredAt,
            })
            .where("tenant_id", "=", event.tenantId),
        ];
      case "tenant.resumed":
        return [
          db
            .updateTable("tenants")
            .set({ status: "active", suspended_at: null, suspension_reason: null, version: event.streamVersion, updated_at: event.occurredAt })
            .where("tenant_id", "=", event.tenantId),
        ];
      case "tenant.retention_set":
        return [
          db
            .updateTable("tenants")
            .set({ retention_days: event.data.days as number | null, version: event.streamVersion, updated_at: event.occurredAt })
            .where("tenant_id", "=", event.tenantId),
        ];
      case "tenant.legal_hold_set":
        return [
          db
            .updateTable("tenants")
            .set({
              legal_hold_reason: event.data.reason as string,
              legal_hold_since: event.occurredAt,
              version: event.streamVersion,
              updated_at: event.occurredAt,
            })
            .where("tenant_id", "=", event.tenantId),
        ];
      case "tenant.legal_hold_released":
        return [
          db
            .updateTable("tenants")
            .set({ legal_hold_reason: null, legal_hold_since: null, version: event.streamVersion, updated_at: event.occurredAt })
            .where("tenant_id", "=", event.tenantId),
        ];
    }
    return [];
  },
};
