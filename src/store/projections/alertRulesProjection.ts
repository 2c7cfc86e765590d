import { sql } from "kysely";
import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// A tenant's alert rules as its admins list them, with how often each fired. The evaluator's
// progress and memory are its own (alert_evaluations).
export const alertRulesProjection: Projection = {
  name: "alert-rules",
  tables: ["alert_rules"],
  handles: new Set(["alert_rule.created", "alert_rule.deleted", "alert.fired"]),
  project(event) {
    const d = event.data as Data;
    const row = () => db.updateTable("alert_rules").where("tenant_id", "=", event.tenantId).where("rule_id", "=", d.ruleId);
    switch (event.type) {
      case "alert_rule.created":
        return [
          db.insertInto("alert_rules").values({
            tenant_id: event.tenantId,
            rule_id: d.ruleId,
            name: d.name,
            condition: JSON.stringify(d.condition),
            cooldown_minutes: d.cooldownMinutes,
            slack: d.slack ? JSON.stringify(d.slack) : null,
            created_by: event.metadata.actor.subject,
            created_at: event.occurredAt,
          }),
        ];
      case "alert_rule.deleted":
        return [row().set({ deleted: true })];
      case "alert.fired":
        return [row().set({ fired_count: sql`fired_count + 1`, last_fired_at: event.occurredAt })];
    }
    return [];
  },
};
