import { sql, type Selectable } from "kysely";
import type { Tx } from "../db.ts";
import type { TasksTable } from "../schema.ts";
import { readKeysetPage, type Page, type TimeIdPosition } from "./keysetPage.ts";

export type TaskRow = Selectable<TasksTable>;
export type TaskStatus = TaskRow["status"];

export function findTask(trx: Tx, tenantId: string, taskId: string): Promise<TaskRow | undefined> {
  return trx.selectFrom("tasks").selectAll().where("tenant_id", "=", tenantId).where("task_id", "=", taskId).executeTakeFirst();
}

export interface TaskFilter {
  agentId?: string | null;
  status?: TaskStatus | null;
  kind?: string | null;
}

const BY_DISPATCH = ["dispatched_at", "task_id"] as const;

/** Newest first, keyset-paged on (dispatched_at, task_id). */
export function listTasks(trx: Tx, tenantId: string, filter: TaskFilter, page: { first: number; after?: TimeIdPosition }): Promise<Page<TaskRow>> {
  let query = trx.selectFrom("tasks").selectAll().where("tenant_id", "=", tenantId);
  if (filter.agentId) query = query.where("agent_id", "=", filter.agentId);
  if (filter.status) query = query.where("status", "=", filter.status);
  if (filter.kind) query = query.where("kind", "=", filter.kind);
  return readKeysetPage(query, { columns: BY_DISPATCH, direction: "desc" }, page);
}

/** An agent's pending tasks still within their deadline, oldest first, keyset-paged on (dispatched_at, task_id). */
export function pendingTasksOf(trx: Tx, tenantId: string, agentId: string, page: { first: number; after?: TimeIdPosition; now: Date }): Promise<Page<TaskRow>> {
  const query = trx
    .selectFrom("tasks")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("agent_id", "=", agentId)
    .where("status", "=", "pending")
    .where("deadline_at", ">", page.now);
  return readKeysetPage(query, { columns: BY_DISPATCH, direction: "asc" }, page);
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
export async function dispatchedSince(
  trx: Tx,
  tenantId: string,
  afterSequence: number,
  limit: number,
): Promise<Array<{ sequence: number; taskId: string; agentId: string }>> {
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
