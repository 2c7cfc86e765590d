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
    // A change of the tenant's row, with the stream version and time every change records.
    const update = (set: Record<string, unknown>) =>
      db
        .updateTable("tenants")
        .set({ ...set, version: event.streamVersion, updated_at: event.occurredAt })
        .where("tenant_id", "=", event.tenantId);
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
        return [update({ tier: event.data.to as string })];
      case "tenant.suspended":
        return [update({ status: "suspended", suspended_at: event.occurredAt, suspension_reason: event.data.reason as string })];
      case "tenant.resumed":
        return [update({ status: "active", suspended_at: null, suspension_reason: null })];
      case "tenant.retention_set":
        return [update({ retention_days: event.data.days as number | null })];
      case "tenant.legal_hold_set":
        return [update({ legal_hold_reason: event.data.reason as string, legal_hold_since: event.occurredAt })];
      case "tenant.legal_hold_released":
        return [update({ legal_hold_reason: null, legal_hold_since: null })];
    }
    return [];
  },
};
