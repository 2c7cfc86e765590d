import { z } from "zod";
import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { jsonWithin } from "../../domain/byteLimits.ts";
import { parseInput } from "../../domain/validation.ts";
import { actOnOwnTask, type TaskDeps } from "./actOnOwnTask.ts";
import type { TaskRow } from "../../store/queries/taskQueries.ts";
import { MAX_TASK_JSON_BYTES } from "./taskLimits.ts";

export const CompleteTaskInput = z.object({ result: jsonWithin(MAX_TASK_JSON_BYTES) });

/** The agent finished a claimed task (task.completed) with its result, at most 64 KB of JSON, recorded as given. */
export function completeTask(deps: TaskDeps, actor: Actor, input: { id: unknown; result: unknown }, request: RequestMeta = {}): Promise<TaskRow> {
  const { result } = parseInput(CompleteTaskInput, { result: input.result });
  return actOnOwnTask(deps, actor, input.id, (agentId, now) => ({ type: "CompleteTask", agentId, result, now }), request);
}
