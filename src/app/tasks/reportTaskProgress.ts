import { z } from "zod";
import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { jsonWithin, textWithin } from "../../domain/byteLimits.ts";
import { parseInput } from "../../domain/validation.ts";
import { actOnOwnTask, type TaskDeps } from "./actOnOwnTask.ts";
import type { TaskRow } from "../../store/queries/taskQueries.ts";
import { MAX_PROGRESS_JSON_BYTES, MAX_PROGRESS_MESSAGE_BYTES } from "./taskLimits.ts";

export const ReportTaskProgressInput = z
  .object({
    progress: jsonWithin(MAX_PROGRESS_JSON_BYTES).nullish(),
    message: textWithin(MAX_PROGRESS_MESSAGE_BYTES).nullish(),
  })
  // An empty report would only add an event that says nothing.
  .refine((r) => (r.progress !== undefined && r.progress !== null) || (r.message !== undefined && r.message !== null), {
    message: "report progress, a message or both",
    path: ["progress"],
  });

/**
 * The agent reports how far it got on a claimed task (task.progressed); the task shows the last
 * progress and message reported (one left out keeps its last value). Each report is an event.
 */
export function reportTaskProgress(
  deps: TaskDeps,
  actor: Actor,
  input: { id: unknown; progress?: unknown; message?: unknown },
  request: RequestMeta = {},
): Promise<TaskRow> {
  const { progress, message } = parseInput(ReportTaskProgressInput, { progress: input.progress, message: input.message });
  return actOnOwnTask(
    deps,
    actor,
    input.id,
    (agentId, now) => ({ type: "ReportTaskProgress", agentId, progress: progress ?? undefined, message: message ?? undefined, now }),
    request,
  );
}
