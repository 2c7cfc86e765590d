import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
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

// ------------------------------------------------------------------ GitHub, through Keyplane
//
// The agent asks Keyplane to act on GitHub (githubFork, githubCommitFile, githubCreatePullRequest):
// Keyplane acts as the agent's linked GitHub identity (keyplane agent link-github), or with an
// installation token a token policy allows, and records each success as a github.* event. The agent
// never holds a GitHub token for these. Keyplane's refusals become the task's error as Keyplane said
// them (message and code).

const REPOSITORY = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/;
const ACTING = ["identity", "installation"] as const;
/** Files one github-contribute task may commit (one commit each). */
export const MAX_CONTRIBUTION_FILES = 20;
/** Tries of one request when Keyplane could not answer (or asked to come back later). */
const OPERATION_ATTEMPTS = 3;
/** Tries of the first commit to a fork GitHub may still be making (404 or 409 from GitHub). */
const FORK_READY_ATTEMPTS = 5;

type Payload = Record<string, unknown>;

function objectPayload(kind: string, payload: unknown, shape: string): Payload {
  if (payload && typeof payload === "object" && !Array.isArray(payload)) return payload as Payload;
  throw new TaskFailure(`invalid ${kind} payload: expected an object ${shape}`);
}

function requiredString(kind: string, p: Payload, field: string, what = "a non-empty string"): string {
  const value = p[field];
  if (typeof value !== "string" || !value.trim()) throw new TaskFailure(`invalid ${kind} payload: ${field} must be ${what}`);
  return value;
}

function optionalString(kind: string, p: Payload, field: string): string | undefined {
  const value = p[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || !value.trim()) throw new TaskFailure(`invalid ${kind} payload: ${field} must be a non-empty string when given`);
  return value;
}

function repositoryOf(kind: string, p: Payload, field = "repository"): string {
  const value = requiredString(kind, p, field, "owner/name");
  if (!REPOSITORY.test(value)) throw new TaskFailure(`invalid ${kind} payload: ${field} must be owner/name`);
  return value;
}

/** app and as, which every GitHub kind passes on when given. */
function actingOf(kind: string, p: Payload): { app?: string; as?: (typeof ACTING)[number] } {
  const app = optionalString(kind, p, "app");
  const as = p.as ?? undefined;
  if (as !== undefined && !(ACTING as readonly unknown[]).includes(as)) throw new TaskFailure(`invalid ${kind} payload: as must be identity or installation`);
  return { ...(app ? { app } : {}), ...(as ? { as: as as (typeof ACTING)[number] } : {}) };
}

function withoutUndefined<T extends Record<string, unknown>>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/**
 * One GitHub operation through Keyplane, its answer's `field`. One Idempotency-Key for every try, so
 * a try whose answer was lost is answered again rather than done twice. Retried: no answer, rate
 * limited, and (with `retry`) what the caller says is worth another try.
 */
async function operate<T>(
  kind: string,
  context: TaskContext,
  field: string,
  query: string,
  input: Record<string, unknown>,
  retry: { attempts: number; when: (error: ApiError) => boolean } = { attempts: OPERATION_ATTEMPTS, when: () => false },
): Promise<T> {
  if (!context.keyplane) throw new TaskFailure(`${kind} needs Keyplane's API: it runs under keyplane agent run`);
  const idempotencyKey = `agent-${field}-${randomUUID()}`;
  const attempts = Math.max(OPERATION_ATTEMPTS, retry.attempts);
  for (let attempt = 1; ; attempt++) {
    try {
      const data = await context.keyplane<Record<string, unknown>>(query, { input: withoutUndefined(input) }, { idempotencyKey, signal: context.signal });
      const answer = data[field];
      if (!answer || typeof answer !== "object") throw new TaskFailure(`${kind}: Keyplane's answer to ${field} is empty`);
      return answer as T;
    } catch (error) {
      if (context.signal.aborted || !(error instanceof ApiError)) throw error;
      const transient =
        error.kind === "unavailable" ||
        error.kind === "rate_limited" ||
        // A retry while the first try is still running at Keyplane: its key is taken until it ends.
        (error.kind === "conflict" && attempt > 1 && /Idempotency-Key is still in progress/i.test(error.message));
      const again = transient ? attempt < OPERATION_ATTEMPTS : retry.when(error) && attempt < attempts;
      if (!again) {
        throw new TaskFailure(`${kind}: ${field} ${error.kind === "unavailable" ? "failed" : "refused"}: ${error.message}`);
      }
      await delay(Math.min(error.retryAfterMs ?? 1_000 * attempt, 30_000), undefined, { signal: context.signal });
    }
  }
}

interface ForkAnswer {
  repository: string;
  fork: string;
  url: string;
  owner: string;
  defaultBranch: string;
  via: string;
  actedAs: string;
}

interface CommitAnswer {
  repository: string;
  branch: string;
  createdFrom: string | null;
  path: string;
  commitSha: string;
  via: string;
  actedAs: string;
}

interface PullRequestAnswer {
  repository: string;
  number: number;
  url: string;
  head: string;
  base: string;
  via: string;
  actedAs: string;
}

/** GitHub makes a fork in the background: right after it, the fork may answer 404 or 409 (empty) for a moment. */
const forkNotReady = (error: ApiError) => error.code === "PROVIDER_ERROR" && /\b(not_found|conflict)\b|HTTP 40[49]/.test(error.message);

const FORK_SHAPE = "{ repository: owner/name, organization?, app?, as? }";

/** github-fork: payload { repository, organization?, app?, as? } -> the fork { repository, fork, url, owner, defaultBranch, via, actedAs }. */
const githubFork: TaskKind = async (payload, context) => {
  const kind = "github-fork";
  const p = objectPayload(kind, payload, FORK_SHAPE);
  const input = { repository: repositoryOf(kind, p), organization: optionalString(kind, p, "organization"), ...actingOf(kind, p) };
  context.progress({ step: "forking", repository: input.repository }, `forking ${input.repository}`);
  return operate<ForkAnswer>(kind, context, "githubFork", GITHUB_FORK, input);
};

const COMMIT_SHAPE = "{ repository: owner/name, branch, fromBranch?, path, content, message, app?, as? }";

/** github-commit: payload { repository, branch, fromBranch?, path, content, message, app?, as? } -> the commit. */
const githubCommit: TaskKind = async (payload, context) => {
  const kind = "github-commit";
  const p = objectPayload(kind, payload, COMMIT_SHAPE);
  if (typeof p.content !== "string") throw new TaskFailure(`invalid ${kind} payload: content must be a string (the file's new content)`);
  const input = {
    repository: repositoryOf(kind, p),
    branch: requiredString(kind, p, "branch"),
    fromBranch: optionalString(kind, p, "fromBranch"),
    path: requiredString(kind, p, "path"),
    content: p.content,
    message: requiredString(kind, p, "message"),
    ...actingOf(kind, p),
  };
  context.progress({ step: "committing", repository: input.repository, branch: input.branch, path: input.path }, `committing ${input.path}`);
  return operate<CommitAnswer>(kind, context, "githubCommitFile", GITHUB_COMMIT_FILE, input);
};

const PULL_SHAPE = "{ repository: owner/name, head, base, title, body?, app?, as? }";

/** github-pull-request: payload { repository, head, base, title, body?, app?, as? } -> the pull request { number, url, … }. */
const githubPullRequest: TaskKind = async (payload, context) => {
  const kind = "github-pull-request";
  const p = objectPayload(kind, payload, PULL_SHAPE);
  const input = {
    repository: repositoryOf(kind, p),
    head: requiredString(kind, p, "head", "a branch, or owner:branch of a fork"),
    base: requiredString(kind, p, "base"),
    title: requiredString(kind, p, "title"),
    body: p.body === undefined || p.body === null ? undefined : p.body,
    ...actingOf(kind, p),
  };
  if (input.body !== undefined && typeof input.body !== "string") throw new TaskFailure(`invalid ${kind} payload: body must be a string`);
  context.progress({ step: "opening", repository: input.repository, head: input.head, base: input.base }, `opening a pull request on ${input.repository}`);
  return operate<PullRequestAnswer>(kind, context, "githubCreatePullRequest", GITHUB_CREATE_PULL_REQUEST, input);
};

const CONTRIBUTE_SHAPE = "{ repository: owner/name, branch, files: [{ path, content }], message, title, body?, base?, organization?, app?, as? }";

/**
 * github-contribute: fork `repository`, commit each file to `branch` of the fork (one commit each,
 * the branch made from `base`, else the fork's default branch), then open a pull request from
 * <fork owner>:<branch> into `base` (default: the fork's default branch) upstream. Progress at each
 * step. -> { fork, branch, commits: [sha…], pullRequest: { number, url }, actedAs }.
 * A step Keyplane refuses fails the task with what was done so far in the message.
 */
const githubContribute: TaskKind = async (payload, context) => {
  const kind = "github-contribute";
  const p = objectPayload(kind, payload, CONTRIBUTE_SHAPE);
  const repository = repositoryOf(kind, p);
  const branch = requiredString(kind, p, "branch");
  if (!Array.isArray(p.files) || p.files.length === 0 || p.files.length > MAX_CONTRIBUTION_FILES) {
    throw new TaskFailure(`invalid ${kind} payload: files must be a list of 1 to ${MAX_CONTRIBUTION_FILES} { path, content }`);
  }
  const seen = new Set<string>();
  const files = p.files.map((file: unknown, i: number) => {
    const f = file && typeof file === "object" && !Array.isArray(file) ? (file as Payload) : null;
    if (!f || typeof f.path !== "string" || !f.path.trim() || typeof f.content !== "string") {
      throw new TaskFailure(`invalid ${kind} payload: files[${i}] must be { path: non-empty string, content: string }`);
    }
    if (seen.has(f.path)) throw new TaskFailure(`invalid ${kind} payload: files[${i}].path ${JSON.stringify(f.path.slice(0, 100))} is listed twice`);
    seen.add(f.path);
    return { path: f.path, content: f.content };
  });
  const message = requiredString(kind, p, "message");
  const title = requiredString(kind, p, "title");
  const body = p.body === undefined || p.body === null ? undefined : p.body;
  if (body !== undefined && typeof body !== "string") throw new TaskFailure(`invalid ${kind} payload: body must be a string`);
  const base = optionalString(kind, p, "base");
  const organization = optionalString(kind, p, "organization");
  const acting = actingOf(kind, p);

  context.progress({ step: "forking", repository }, `forking ${repository}`);
  const fork = await operate<ForkAnswer>(kind, context, "githubFork", GITHUB_FORK, { repository, organization, ...acting });
  const commits: string[] = [];
  for (const [i, file] of files.entries()) {
    context.progress(
      { step: "committing", fork: fork.fork, branch, path: file.path, file: i + 1, files: files.length, commits },
      `committing ${file.path} (${i + 1} of ${files.length}) to ${fork.fork}:${branch}`,
    );
    const commit = await operate<CommitAnswer>(
      kind,
      context,
      "githubCommitFile",
      GITHUB_COMMIT_FILE,
      { repository: fork.fork, branch, fromBranch: i === 0 ? base : undefined, path: file.path, content: file.content, message, ...acting },
      i === 0 ? { attempts: FORK_READY_ATTEMPTS, when: forkNotReady } : undefined,
    ).catch((error: unknown) => {
      if (error instanceof TaskFailure && commits.length)
        throw new TaskFailure(`${error.message} (after ${commits.length} commit(s) to ${fork.fork}:${branch})`);
      throw error;
    });
    commits.push(commit.commitSha);
  }
  const head = `${fork.owner}:${branch}`;
  const into = base ?? fork.defaultBranch;
  context.progress({ step: "opening", fork: fork.fork, head, base: into, commits }, `opening a pull request from ${head} into ${repository}:${into}`);
  const pull = await operate<PullRequestAnswer>(kind, context, "githubCreatePullRequest", GITHUB_CREATE_PULL_REQUEST, {
    repository,
    head,
    base: into,
    title,
    body,
    ...acting,
  });
  return { fork: fork.fork, branch, commits, pullRequest: { number: pull.number, url: pull.url }, actedAs: pull.actedAs };
};

export const TASK_KINDS: Readonly<Record<string, TaskKind>> = {
  echo,
  "http-check": httpCheck,
  "github-fork": githubFork,
  "github-commit": githubCommit,
  "github-pull-request": githubPullRequest,
  "github-contribute": githubContribute,
};

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
export async function runTask(
  task: AgentTask,
  options: { stop: AbortSignal; progress: TaskContext["progress"]; fetch?: typeof fetch; keyplane?: KeyplaneCall },
): Promise<TaskOutcome> {
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
    const result = await Promise.race([
      kind(task.payload, { signal, progress: options.progress, fetch: options.fetch ?? fetch, keyplane: options.keyplane }),
      aborted,
    ]);
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
