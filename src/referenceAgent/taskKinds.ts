import { ApiError, GITHUB_COMMIT_FILE, GITHUB_CREATE_PULL_REQUEST, GITHUB_FORK, type AgentTask } from "./keyplaneApi.ts";

// The task kinds the reference agent runs. A kind is a function from the task's payload to its result;
// whatever it throws becomes the task's error (TaskFailure messages verbatim, others prefixed).

export class TaskFailure extends Error {}

export interface TaskContext {
  /** Aborted when the task's time is up or the agent stops. */
  signal: AbortSignal;
  /** Best effort: tells Keyplane how far the task got. */
  progress(progress: unknown, message?: string): void;
  fetch: typeof fetch;
  /** Keyplane's GraphQL API as this agent (its own credential); absent where the agent has no session. */
  keyplane?: KeyplaneCall;
}

/** One authenticated GraphQL request to Keyplane; failures are ApiErrors. */
export type KeyplaneCall = <T = Record<string, unknown>>(
  query: string,
  variables: Record<string, unknown>,
  options?: { idempotencyKey?: string; signal?: AbortSignal },
) => Promise<T>;

export type TaskKind = (payload: unknown, context: TaskContext) => Promise<unknown>;

/** echo: the payload is the result. (A null payload gives {}: completeTask needs a result.) */
const echo: TaskKind = async (payload) => payload ?? {};

const HTTP_METHODS = ["GET", "HEAD"] as const;
const DEFAULT_HTTP_TIMEOUT_MS = 10_000;

/**
 * http-check: one request, redirects not followed (the status is the URL's own answer).
 * payload { url, method?: GET|HEAD, expectStatus?: number, timeoutMs?: number } ->
 * result { status, ok, durationMs }, ok when the status is expectStatus (or any 2xx without one).
 * No answer (refused, DNS, timeout) fails the task: there is no status to report.
 */
const httpCheck: TaskKind = async (payload, { signal, fetch: doFetch, progress }) => {
  const p = payload && typeof payload === "object" && !Array.isArray(payload) ? (payload as Record<string, unknown>) : null;
  if (!p) throw new TaskFailure("invalid http-check payload: expected an object { url, method?, expectStatus?, timeoutMs? }");
  let url: URL;
  try {
    if (typeof p.url !== "string") throw new Error();
    url = new URL(p.url);
  } catch {
    throw new TaskFailure("invalid http-check payload: url must be an http(s) URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TaskFailure("invalid http-check payload: url must be an http(s) URL");
  const method = p.method === undefined || p.method === null ? "GET" : p.method;
  if (typeof method !== "string" || !(HTTP_METHODS as readonly string[]).includes(method.toUpperCase())) {
    throw new TaskFailure(`invalid http-check payload: method must be GET or HEAD`);
  }
  const expectStatus = p.expectStatus ?? undefined;
  if (expectStatus !== undefined && !(typeof expectStatus === "number" && Number.isInteger(expectStatus) && expectStatus >= 100 && expectStatus <= 599)) {
    throw new TaskFailure("invalid http-check payload: expectStatus must be an HTTP status (100-599)");
  }
  const timeoutMs = p.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  if (!(typeof timeoutMs === "number" && Number.isFinite(timeoutMs) && timeoutMs > 0))
    throw new TaskFailure("invalid http-check payload: timeoutMs must be a positive number");

  // Only origin and path in messages: a query string may carry a secret.
  const shown = `${method.toUpperCase()} ${url.origin}${url.pathname}`;
  progress({ step: "requesting" }, `${shown}`);
  const started = performance.now();
  const timeout = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await doFetch(url, { method: method.toUpperCase(), redirect: "manual", signal: AbortSignal.any([signal, timeout]) });
  } catch (error) {
    if (signal.aborted) throw error; // the task's own deadline or a stop: the runner says which
    if (timeout.aborted) throw new TaskFailure(`http-check ${shown}: no answer within ${timeoutMs} ms`);
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const why =
      typeof cause?.code === "string"
        ? cause.code
        : typeof cause?.message === "string"
          ? cause.message
          : error instanceof Error
            ? error.message
            : String(error);
    throw new TaskFailure(`http-check ${shown}: request failed (${why})`);
  }
  const durationMs = Math.round(performance.now() - started);
  await response.body?.cancel().catch(() => {});
  const status = response.status;
  const ok = expectStatus !== undefined ? status === expectStatus : status >= 200 && status < 300;
  return { status, ok, durationMs };
};

export const TASK_KINDS: Readonly<Record<string, TaskKind>> = { echo, "http-check": httpCheck };

export function unknownKindMessage(kind: string): string {
  return `unknown task kind: ${kind} (this agent runs: ${Object.keys(TASK_KINDS).join(", ")})`;
}

/** Without a timeoutSeconds from Keyplane, a task gets this long. */
export const DEFAULT_TASK_TIMEOUT_SECONDS = 300;

export type TaskOutcome = { outcome: "completed"; result: unknown } | { outcome: "failed"; error: string };

/**
 * Runs one claimed task to its outcome: the kind's result, or its error; an unknown kind, the task's
 * timeoutSeconds running out, and `stop` aborting (the agent stopping) are failures with their own message.
 */
export async function runTask(task: AgentTask, options: { stop: AbortSignal; progress: TaskContext["progress"]; fetch?: typeof fetch }): Promise<TaskOutcome> {
  const kind = TASK_KINDS[task.kind];
  if (!kind) return { outcome: "failed", error: unknownKindMessage(task.kind) };
  const seconds = task.timeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS;
  const deadline = AbortSignal.timeout(Math.max(1, Math.round(seconds * 1000)));
  const signal = AbortSignal.any([deadline, options.stop]);
  if (options.stop.aborted) return { outcome: "failed", error: "the agent stopped before the task finished" };
  const reason = (): TaskOutcome | null =>
    deadline.aborted
      ? { outcome: "failed", error: `timed out after ${seconds} s (timeoutSeconds)` }
      : options.stop.aborted
        ? { outcome: "failed", error: "the agent stopped before the task finished" }
        : null;
  // A kind that does not watch the signal still loses the race.
  const ABORTED = Symbol("aborted");
  let onAbort: () => void = () => {};
  const aborted = new Promise<typeof ABORTED>((resolve) => {
    onAbort = () => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const result = await Promise.race([kind(task.payload, { signal, progress: options.progress, fetch: options.fetch ?? fetch }), aborted]);
    if (result === ABORTED) return reason()!;
    return { outcome: "completed", result: result === undefined || result === null ? {} : result };
  } catch (error) {
    const stopped = reason();
    if (stopped) return stopped;
    if (error instanceof TaskFailure) return { outcome: "failed", error: error.message };
    return { outcome: "failed", error: `${task.kind} failed: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
