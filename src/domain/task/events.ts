import { z } from "zod";
import { defineEvent, isoTime, type EventOf } from "../eventDefinition.ts";

// Tasks: command and control of agents. Each task is its own stream ("task", task id) and every
// transition is one of these events. Payload, progress and result are the caller's JSON as given:
// they land in the audit log like any event data, so secrets do not belong in them (hand an agent a
// reference it resolves itself, e.g. an installation id or a GitHub token request, never the token).

export const taskStatusSchema = z.enum(["pending", "claimed", "completed", "failed", "timed_out"]);
export type TaskStatus = z.infer<typeof taskStatusSchema>;

/** Keyplane dispatched a task to one agent; it must be claimed and finished before deadlineAt. */
export const TaskDispatched = defineEvent(
  "task.dispatched",
  1,
  z.object({
    taskId: z.string(),
    agentId: z.string(),
    kind: z.string(),
    payload: z.unknown(),
    timeoutSeconds: z.number().int().positive(),
    deadlineAt: isoTime,
  }),
);
/** The agent took the task on: from now on no one else does. */
export const TaskClaimed = defineEvent("task.claimed", 1, z.object({ taskId: z.string(), agentId: z.string() }));
/** The agent reported how far it got (the last report is what the task shows). */
export const TaskProgressed = defineEvent(
  "task.progressed",
  1,
  z.object({ taskId: z.string(), progress: z.unknown().optional(), message: z.string().optional() }),
);
export const TaskCompleted = defineEvent("task.completed", 1, z.object({ taskId: z.string(), result: z.unknown() }));
export const TaskFailed = defineEvent("task.failed", 1, z.object({ taskId: z.string(), error: z.string() }));
/** The deadline passed while the task was pending or claimed; status is what it was then. */
export const TaskTimedOut = defineEvent("task.timed_out", 1, z.object({ taskId: z.string(), status: z.enum(["pending", "claimed"]) }));

export const taskEvents = [TaskDispatched, TaskClaimed, TaskProgressed, TaskCompleted, TaskFailed, TaskTimedOut] as const;

export type TaskEvent = EventOf<(typeof taskEvents)[number]>;
