import { sql, type Selectable } from "kysely";
import type { Tx } from "../../store/db.ts";
import type { TasksTable } from "../../store/schema.ts";

export type TaskRow = Selectable<TasksTable>;
export type TaskStatus = TaskRow["status"];

/** Keyset position in a list ordered by dispatch time, then task id. */
export interface TaskPosition {
  dispatchedAt: Date;
  id: string;
}

export function findTask(trx: Tx, tenantId: string, taskId: string): Promise<TaskRow | undefined> {
  return trx.selectFrom("tasks").selectAll().where("tenant_id", "=", tenantId).where("task_id", "=", taskId).executeTakeFirst();
}

export interface TaskFilter {
  agentId?: string | null;
  status?: TaskStatus | null;
  kind?: string | null;
}

/** Newest first, keyset-paged on (dispatched_at, task_id). */
export async function listTasks(trx: Tx, tenantId: string, filter: TaskFilter, page: { first: number; after?: TaskPosition }): Promise<{ rows: TaskRow[]; hasNextPage: boolean }> {
  let query = trx.selectFrom("tasks").selectAll().where("tenant_id", "=", tenantId);
  if (filter.agentId) query = query.where("agent_id", "=", filter.agentId);
  if (filter.status) query = query.where("status", "=", filter.status);
  if (filter.kind) query = query.where("kind", "=", filter.kind);
  if (page.after) {
    const { dispatchedAt, id } = page.after;
    query = query.where((eb) => eb.or([eb("dispatched_at", "<", dispatchedAt), eb.and([eb("dispatched_at", "=", dispatchedAt), eb("task_id", "<", id)])]));
  }
  const rows = await query.orderBy("dispatched_at", "desc").orderBy("task_id", "desc").limit(page.first + 1).execute();
  return { rows: rows.slice(0, page.first), hasNextPage: rows.length > page.first };
}

/** An agent's pending tasks still within their deadline, oldest first, keyset-paged on (dispatched_at, task_id). */
export function pendingTasksOf(trx: Tx, tenantId: string, agentId: string, page: { first: number; after?: TaskPosition; now: Date }): Promise<TaskRow[]> {
  let query = trx
    .selectFrom("tasks")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("agent_id", "=", agentId)
    .where("status", "=", "pending")
    .where("deadline_at", ">", page.now);
  if (page.after) {
    const { dispatchedAt, id } = page.after;
    query = query.where((eb) => eb.or([eb("dispatched_at", ">", dispatchedAt), eb.and([eb("dispatched_at", "=", dispatchedAt), eb("task_id", ">", id)])]));
  }
  return query.orderBy("dispatched_at").orderBy("task_id").limit(page.first).execute();
}

/** The same, among the given task ids. */
export function pendingTasksAmong(trx: Tx, tenantId: string, agentId: string, taskIds: string[], now: Date): Promise<TaskRow[]> {
  if (taskIds.length === 0) return Promise.resolve([]);
  return trx
    .selectFrom("tasks")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("agent_id", "=", agentId)
    .where("task_id", "in", taskIds)
    .where("status", "=", "pending")
    .where("deadline_at", ">", now)
    .execute();
}

/** The tenant's last task.dispatched position in its log (0 when there is none). */
export async function lastDispatchSequence(trx: Tx, tenantId: string): Promise<number> {
  const row = await trx
    .selectFrom("events")
    .select((eb) => eb.fn.max("tenant_seq").as("seq"))
    .where("tenant_id", "=", tenantId)
    .where("event_type", "=", "task.dispatched")
    .executeTakeFirst();
  return Number(row?.seq ?? 0);
}

/**
 * task.dispatched events after a position in the tenant's log, in log order. The per-tenant sequence
 * becomes visible in commit order, so a reader that pages by it misses no dispatch that commits later.
 */
export async function dispatchedSince(trx: Tx, tenantId: string, afterSequence: number, limit: number): Promise<Array<{ sequence: number; taskId: string; agentId: string }>> {
  const rows = await trx
    .selectFrom("events")
    .select(["tenant_seq", sql<string>`data->>'taskId'`.as("task_id"), sql<string>`data->>'agentId'`.as("agent_id")])
    .where("tenant_id", "=", tenantId)
    .where("event_type", "=", "task.dispatched")
    .where("tenant_seq", ">", afterSequence)
    .orderBy("tenant_seq")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ sequence: Number(r.tenant_seq), taskId: r.task_id, agentId: r.agent_id }));
}

/** Platform-wide (withPlatform): pending or claimed tasks whose deadline has passed, earliest first. */
export function overdueTasks(trx: Tx, now: Date, limit: number): Promise<Pick<TaskRow, "tenant_id" | "task_id">[]> {
  return trx
    .selectFrom("tasks")
    .select(["tenant_id", "task_id"])
    .where("status", "in", ["pending", "claimed"])
    .where("deadline_at", "<=", now)
    .orderBy("deadline_at")
    .limit(limit)
    .execute();
}
