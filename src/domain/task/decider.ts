import type { Decider, StreamName } from "../decider.ts";
import { decideTask, type TaskCommand } from "./decide.ts";
import type { TaskEvent } from "./events.ts";
import { evolveTask, initialTaskState, type TaskState } from "./evolve.ts";

export const taskDecider: Decider<TaskState, TaskCommand, TaskEvent> = { initialState: initialTaskState, evolve: evolveTask, decide: decideTask };

/** Each task is its own stream; its id is a Keyplane UUID. */
export const taskStream = (taskId: string): StreamName => ({ streamType: "task", streamId: taskId });
