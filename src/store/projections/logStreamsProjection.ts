import { sql } from "kysely";
import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

/** A stream a receiver's refusal stopped is judged afresh once changed or resumed (evolve.ts does the same). */
const pendingIfError = sql<"pending" | "healthy" | "degraded">`case when health = 'error' then 'pending' else health end`;

// A tenant's log streams as an admin lists them: destination (without its query or secret), filter,
// state and health. The cursor and the lease are the deliverer's (log_stream_deliveries).
export const logStreamsProjection: Projection = {
  name: "log-streams",
  tables: ["log_streams"],
  handles: new Set([
    "log_stream.created",
    "log_stream.updated",
    "log_stream.secret_rotated",
    "log_stream.paused",
    "log_stream.resumed",
    "log_stream.deleted",
    "log_stream.health_changed",
  ]),
  project(event) {
    const d = event.data as Data;
    const row = () => db.updateTable("log_streams").where("tenant_id", "=", event.tenantId).where("log_stream_id", "=", d.logStreamId);
    const touched = { version: event.streamVersion, updated_at: event.occurredAt };
    switch (event.type) {
      case "log_stream.created":
        return [
          db.insertInto("log_streams").values({
            tenant_id: event.tenantId,
            log_stream_id: d.logStreamId,
            name: d.name,
            kind: d.kind,
            destination: d.destination,
            settings: JSON.stringify(d.settings),
            filter: JSON.stringify(d.filter),
            secret_fingerprint: d.secretFingerprint,
            state: "active",
            health: "pending",
            version: event.streamVersion,
            created_by: event.metadata.actor.subject,
            created_at: event.occurredAt,
            updated_at: event.occurredAt,
          }),
        ];
      case "log_stream.updated":
        return [
          row().set({
            name: d.name,
            destination: d.destination,
            settings: JSON.stringify(d.settings),
            filter: JSON.stringify(d.filter),
            secret_fingerprint: d.secretFingerprint,
            health: pendingIfError,
            last_error: null,
            ...touched,
          }),
        ];
      case "log_stream.secret_rotated":
        return [row().set({ secret_fingerprint: d.secretFingerprint, ...touched })];
      case "log_stream.paused":
        return [row().set({ state: "paused", ...touched })];
      case "log_stream.resumed":
        return [
          row().set({
            state: "active",
            health: pendingIfError,
            ...touched,
          }),
        ];
      case "log_stream.deleted":
        return [row().set({ state: "deleted", ...touched })];
      case "log_stream.health_changed":
        return [row().set({ health: d.to, last_error: d.error ?? null, ...touched })];
    }
    return [];
  },
};
