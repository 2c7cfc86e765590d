import type { Actor } from "../../auth/actor.ts";
import { parseInput } from "../../domain/validation.ts";
import { withTenant } from "../../store/db.ts";
import { agentIdOf } from "../agents/agentPrincipal.ts";
import type { AppDeps } from "../deps.ts";
import { findTask, listTasks, pendingTasksOf, type TaskFilter, type TaskPosition, type TaskRow } from "./taskQueries.ts";
import { TaskIdInput } from "./taskStream.ts";

type Deps = Pick<AppDeps, "db" | "now">;

/** The tenant's tasks for dashboards, newest first. */
export function tasksOfTenant(deps: Deps, actor: Actor, filter: TaskFilter, page: { first: number; after?: TaskPosition }): Promise<{ rows: TaskRow[]; hasNextPage: boolean }> {
  return withTenant(deps.db, actor.tenantId, (trx) => listTasks(trx, actor.tenantId, filter, page));
}

/** One task of the caller's tenant, or null (also for another tenant's id: nothing tells them apart). */
export async function taskOfTenant(deps: Deps, actor: Actor, rawId: unknown): Promise<TaskRow | null> {
  const { id } = parseInput(TaskIdInput, { id: rawId });
  return (await withTenant(deps.db, actor.tenantId, (trx) => findTask(trx, actor.tenantId, id))) ?? null;
}

/** For an agent polling instead of subscribing: its own pending tasks within their deadline, oldest first. */
export function pendingTasks(deps: Deps, actor: Actor, first: number): Promise<TaskRow[]> {
  const agentId = agentIdOf(actor);
  return withTenant(deps.db, actor.tenantId, (trx) => pendingTasksOf(trx, actor.tenantId, agentId, { first, now: deps.now() }));
}
