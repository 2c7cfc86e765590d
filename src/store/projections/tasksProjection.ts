import type { Updateable } from "kysely";
import type { TasksTable } from "../schema.ts";
import type { ProjectedEvent, Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// The tasks read model: one row per task with its current status, last progress and outcome.
export const tasksProjection: Projection = {
  name: "tasks",
  tables: ["tasks"],
  handles: new Set(["task.dispatched", "task.claimed", "task.progressed", "task.completed", "task.failed", "task.timed_out"]),
  project(event) {
    const d = event.data as Data;
    switch (event.type) {
      case "task.dispatched":
        return [
          db.insertInto("tasks").values({
            tenant_id: event.tenantId,
            task_id: d.taskId,
            agent_id: d.agentId,
            kind: d.kind,
            payload: JSON.stringify(d.payload ?? null),
            status: "pending",
            timeout_seconds: d.timeoutSeconds,
            deadline_at: d.deadlineAt,
            progress: null,
            progress_message: null,
            result: null,
            error: null,
            dispatched_by: event.metadata.actor.subject,
            dispatched_at: event.occurredAt,
            claimed_at: null,
            finished_at: null,
            version: event.streamVersion,
          }),
        ];
      case "task.claimed":
        return update(event, { status: "claimed", claimed_at: event.occurredAt });
      case "task.progressed":
        // What a report leaves out keeps its last reported value.
        return update(event, {
          ...(d.progress !== undefined ? { progress: JSON.stringify(d.progress) } : {}),
          ...(d.message !== undefined ? { progress_message: d.message } : {}),
        });
      case "task.completed":
        return update(event, { status: "completed", result: JSON.stringify(d.result ?? null), finished_at: event.occurredAt });
      case "task.failed":
        return update(event, { status: "failed", error: d.error, finished_at: event.occurredAt });
      case "task.timed_out":
        return update(event, { status: "timed_out", finished_at: event.occurredAt });
    }
    return [];
  },
};

function update(event: ProjectedEvent, set: Updateable<TasksTable>) {
  return [
    db
      .updateTable("tasks")
      .set({ ...set, version: event.streamVersion })
      .where("tenant_id", "=", event.tenantId)
      .where("task_id", "=", (event.data as Data).taskId),
  ];
}
