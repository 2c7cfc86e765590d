import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { taskDecider, taskStream } from "../../domain/task/decider.ts";
import { TaskTimedOutError, type TaskCommand } from "../../domain/task/decide.ts";
import { parseInput } from "../../domain/validation.ts";
import { withTenant } from "../../store/db.ts";
import { agentIdOf } from "../agents/agentPrincipal.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { findTask, type TaskRow } from "../../store/queries/taskQueries.ts";
import { timeOutTask } from "./timeOutTasks.ts";

export type TaskDeps = Pick<AppDeps, "db" | "now">;

export const TaskIdInput = z.object({ id: z.string().uuid("not a task id") });

/**
 * One step of an agent on one of its own tasks (claim, progress, complete, fail), decided on the
 * task's stream and read back, in one tenant transaction. Only the agent the task was dispatched to
 * may act on it; to anyone else it does not exist (NOT_FOUND). Two agents' calls that race on one
 * task: the append checks the stream version, so exactly one of them wins.
 */
export async function actOnOwnTask(
  deps: TaskDeps,
  actor: Actor,
  rawId: unknown,
  command: (agentId: string, now: Date) => TaskCommand,
  request: RequestMeta = {},
): Promise<TaskRow> {
  const agentId = agentIdOf(actor);
  const { id } = parseInput(TaskIdInput, { id: rawId });
  const tenantId = actor.tenantId;
  try {
    return await withTenant(deps.db, tenantId, async (trx) => {
      const now = deps.now();
      await decideAndAppend(trx, {
        tenantId,
        ...taskStream(id),
        decider: taskDecider,
        command: command(agentId, now),
        metadata: eventMetadata(actor, request),
        occurredAt: now,
      });
      return (await findTask(trx, tenantId, id))!;
    });
  } catch (error) {
    // Past its deadline: the timeout is recorded now rather than at the next sweep.
    if (error instanceof TaskTimedOutError) await timeOutTask(deps, tenantId, id).catch(() => false);
    throw error;
  }
}
