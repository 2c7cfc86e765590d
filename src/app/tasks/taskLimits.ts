/** Payload and result: at most 64 KB of JSON each (UTF-8). */
export const MAX_TASK_JSON_BYTES = 64 * 1024;
export const MAX_PROGRESS_JSON_BYTES = 16 * 1024;
export const MAX_TASK_ERROR_BYTES = 4 * 1024;
export const MAX_PROGRESS_MESSAGE_BYTES = 1024;
