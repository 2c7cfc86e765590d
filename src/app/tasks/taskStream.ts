import { z } from "zod";
import { decideTask } from "../../domain/task/decide.ts";
import { evolveTask, initialTaskState } from "../../domain/task/evolve.ts";

export const taskDecider = { initialState: initialTaskState, evolve: evolveTask, decide: decideTask };

/** Each task is its own stream; its id is a Keyplane UUID. */
export const taskStream = (taskId: string) => ({ streamType: "task", streamId: taskId });

export const TaskIdInput = z.object({ id: z.string().uuid("not a task id") });

/** Payload and result: at most 64 KB of JSON each (UTF-8). */
export const MAX_TASK_JSON_BYTES = 64 * 1024;
export const MAX_PROGRESS_JSON_BYTES = 16 * 1024;
export const MAX_TASK_ERROR_BYTES = 4 * 1024;
export const MAX_PROGRESS_MESSAGE_BYTES = 1024;

const bytesOf = (text: string) => Buffer.byteLength(text, "utf8");
export const jsonBytes = (value: unknown): number => bytesOf(JSON.stringify(value) ?? "null");

/** Any JSON value of at most `max` bytes serialized. */
export const jsonWithin = (max: number) => z.unknown().refine((v) => jsonBytes(v) <= max, `at most ${max / 1024} KB of JSON`);
/** A string of at most `max` UTF-8 bytes. */
export const textWithin = (max: number) => z.string().refine((s) => bytesOf(s) <= max, `at most ${max} bytes`);
