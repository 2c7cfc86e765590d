import { ConflictError, NotFoundError } from "../../errors.ts";
import { TaskClaimed, TaskCompleted, TaskDispatched, TaskFailed, TaskProgressed, TaskTimedOut, type TaskEvent } from "./events.ts";
import { isFinished, type TaskState } from "./evolve.ts";

export type TaskCommand =
  | { type: "DispatchTask"; taskId: string; agentId: string; kind: string; payload: unknown; timeoutSeconds: number; now: Date }
  | { type: "ClaimTask"; agentId: string; now: Date }
  | { type: "ReportTaskProgress"; agentId: string; progress?: unknown; message?: string; now: Date }
  | { type: "CompleteTask"; agentId: string; result: unknown; now: Date }
  | { type: "FailTask"; agentId: string; error: string; now: Date }
  | { type: "TimeOutTask"; now: Date };

/**
 * The task's deadline passed before the agent acted: CONFLICT like any other refused transition. The
 * use case records task.timed_out on the spot, so the task reads timed_out by the time the caller looks.
 */
export class TaskTimedOutError extends ConflictError {
  constructor(
    readonly taskId: string,
    deadlineAt: string,
  ) {
    super(`task timed out at ${deadlineAt}`, { status: "timed_out", deadlineAt });
  }
}

export function decideTask(command: TaskCommand, state: TaskState): TaskEvent[] {
  if (command.type === "DispatchTask") {
    if (state.exists) throw new ConflictError(`task ${command.taskId} already exists`);
    const { taskId, agentId, kind, payload, timeoutSeconds, now } = command;
    const deadlineAt = new Date(now.getTime() + timeoutSeconds * 1000).toISOString();
    return [TaskDispatched({ taskId, agentId, kind, payload: payload ?? null, timeoutSeconds, deadlineAt })];
  }
  if (!state.exists) throw new NotFoundError("task");
  const taskId = state.id;
  const pastDeadline = command.now.getTime() >= new Date(state.deadlineAt).getTime();

  if (command.type === "TimeOutTask") {
    // Finished tasks and tasks still within their time have nothing to time out: the sweep moves on.
    if (isFinished(state.status) || !pastDeadline) return [];
    return [TaskTimedOut({ taskId, status: state.status as "pending" | "claimed" })];
  }

  // Only the agent the task was dispatched to knows it exists.
  if (command.agentId !== state.agentId) throw new NotFoundError("task");
  if (state.status === "timed_out" || (!isFinished(state.status) && pastDeadline)) throw new TaskTimedOutError(taskId, state.deadlineAt);
  switch (command.type) {
    case "ClaimTask":
      if (state.status !== "pending") throw new ConflictError(`task is ${state.status}: only a pending task can be claimed`, { status: state.status });
      return [TaskClaimed({ taskId, agentId: state.agentId })];
    case "ReportTaskProgress":
      requireClaimed(state.status);
      return [TaskProgressed({ taskId, progress: command.progress ?? undefined, message: command.message })];
    case "CompleteTask":
      requireClaimed(state.status);
      return [TaskCompleted({ taskId, result: command.result ?? null })];
    case "FailTask":
      requireClaimed(state.status);
      return [TaskFailed({ taskId, error: command.error })];
  }
}

function requireClaimed(status: string): void {
  if (status === "claimed") return;
  const hint = status === "pending" ? ": claim it first" : "";
  throw new ConflictError(`task is ${status}${hint}`, { status });
}
