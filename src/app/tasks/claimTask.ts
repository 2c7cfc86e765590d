import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { actOnOwnTask, type TaskDeps } from "./actOnOwnTask.ts";
import type { TaskRow } from "../../store/queries/taskQueries.ts";

/** The agent takes on one of its pending tasks (task.claimed). A task is claimed at most once: any other status is CONFLICT. */
export function claimTask(deps: TaskDeps, actor: Actor, input: { id: unknown }, request: RequestMeta = {}): Promise<TaskRow> {
  return actOnOwnTask(deps, actor, input.id, (agentId, now) => ({ type: "ClaimTask", agentId, now }), request);
}
