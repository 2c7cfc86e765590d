import { eventMetadata, systemActor } from "../../auth/actor.ts";
import { taskDecider, taskStream } from "../../domain/task/decider.ts";
import { ConflictError } from "../../errors.ts";
import { withPlatform, withTenant } from "../../store/db.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { overdueTasks } from "../../store/queries/taskQueries.ts";

const BATCH = 200;

/**
 * Records task.timed_out for every pending or claimed task past its deadline, across all tenants;
 * returns how many it recorded. Safe to run in several processes at once: an append that conflicts
 * means another process (or the agent) changed the task first, and a task already finished is left alone.
 * The agent sweeper calls it on its schedule.
 */
export async function timeOutTasks(deps: Pick<AppDeps, "db" | "now" | "logger">): Promise<number> {
  let total = 0;
  for (;;) {
    const now = deps.now();
    const overdue = await withPlatform(deps.db, (trx) => overdueTasks(trx, now, BATCH));
    let recorded = 0;
    for (const { tenant_id, task_id } of overdue) {
      try {
        if (await timeOutTask(deps, tenant_id, task_id, now)) recorded++;
      } catch (error) {
        if (error instanceof ConflictError) continue;
        deps.logger.warn({ err: error, tenantId: tenant_id, taskId: task_id }, "could not time out a task; the next sweep tries again");
      }
    }
    total += recorded;
    // Another page only while this one was full and moved something (no spinning on what others hold).
    if (overdue.length < BATCH || recorded === 0) return total;
  }
}

/** One task: task.timed_out when it is still open and past its deadline. True when recorded. */
export async function timeOutTask(deps: Pick<AppDeps, "db" | "now">, tenantId: string, taskId: string, now: Date = deps.now()): Promise<boolean> {
  const { decided } = await withTenant(deps.db, tenantId, (trx) =>
    decideAndAppend(trx, {
      tenantId,
      ...taskStream(taskId),
      decider: taskDecider,
      command: { type: "TimeOutTask", now },
      metadata: eventMetadata(systemActor("task-timeouts", tenantId)),
      occurredAt: now,
    }),
  );
  return decided.length > 0;
}
