import type { TaskEvent, TaskStatus } from "./events.ts";

export type TaskState =
  | { exists: false }
  | {
      exists: true;
      id: string;
      /** The one agent the task was dispatched to: the only one that may see, claim and finish it. */
      agentId: string;
      status: TaskStatus;
      deadlineAt: string;
    };

export const initialTaskState = (): TaskState => ({ exists: false });

/** Finished one way or another: nothing happens to the task any more. */
export const isFinished = (status: TaskStatus): boolean => status === "completed" || status === "failed" || status === "timed_out";

export function evolveTask(state: TaskState, event: TaskEvent): TaskState {
  if (event.type === "task.dispatched") {
    const d = event.data;
    return { exists: true, id: d.taskId, agentId: d.agentId, status: "pending", deadlineAt: d.deadlineAt };
  }
  if (!state.exists) return state;
  switch (event.type) {
    case "task.claimed":
      return { ...state, status: "claimed" };
    case "task.completed":
      return { ...state, status: "completed" };
    case "task.failed":
      return { ...state, status: "failed" };
    case "task.timed_out":
      return { ...state, status: "timed_out" };
    default:
      return state;
  }
}
