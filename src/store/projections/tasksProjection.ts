import type { Updateable } from "kysely";
import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import type { TasksTable } from "../schema.ts";
import type { Projection } from "./projection.ts";

type Data = Record<string, any>;

// The tasks read model: one row per task with its current status, last progress and outcome.
export const tasksProjection: Projection = {
  name: "tasks",
  tables: ["tasks"],
  handles: new Set(["task.dispatched", "task.claimed", "task.progressed", "task.completed", "task.failed", "task.timed_out"]),
  async apply(trx, event) {
    const d = event.data as Data;
    switch (event.type) {
      case "task.dispatched":
        await trx
          .insertInto("tasks")
          .values({
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
          })
          .execute();
        return;
      case "task.claimed":
        return update(trx, event, { status: "claimed", claimed_at: event.occurredAt });
      case "task.progressed":
        // What a report leaves out keeps its last reported value.
        return update(trx, event, {
          ...(d.progress !== undefined ? { progress: JSON.stringify(d.progress) } : {}),
          ...(d.message !== undefined ? { progress_message: d.message } : {}),
        });
      case "task.completed":
        return update(trx, event, { status: "completed", result: JSON.stringify(d.result ?? null), finished_at: event.occurredAt });
      case "task.failed":
        return update(trx, event, { status: "failed", error: d.error, finished_at: event.occurredAt });
      case "task.timed_out":
        return update(trx, event, { status: "timed_out", finished_at: event.occurredAt });
    }
  },
};

async function update(trx: Tx, event: StoredEvent, set: Updateable<TasksTable>) {
  await trx
    .updateTable("tasks")
    .set({ ...set, version: event.streamVersion })
    .where("tenant_id", "=", event.tenantId)
    .where("task_id", "=", (event.data as Data).taskId)
    .execute();
}
