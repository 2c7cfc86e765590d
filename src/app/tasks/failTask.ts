import { z } from "zod";
import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { textWithin } from "../../domain/byteLimits.ts";
import { parseInput } from "../../domain/validation.ts";
import { actOnOwnTask, type TaskDeps } from "./actOnOwnTask.ts";
import type { TaskRow } from "../../store/queries/taskQueries.ts";
import { MAX_TASK_ERROR_BYTES } from "./taskLimits.ts";

export const FailTaskInput = z.object({ error: textWithin(MAX_TASK_ERROR_BYTES).pipe(z.string().trim().min(1, "required")) });

/** The agent gives up on a claimed task (task.failed) with an error of at most 4 KB. */
export function failTask(deps: TaskDeps, actor: Actor, input: { id: unknown; error: unknown }, request: RequestMeta = {}): Promise<TaskRow> {
  const { error } = parseInput(FailTaskInput, { error: input.error });
  return actOnOwnTask(deps, actor, input.id, (agentId, now) => ({ type: "FailTask", agentId, error, now }), request);
}
