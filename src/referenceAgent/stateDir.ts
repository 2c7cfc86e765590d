import { constants, mkdirSync, statSync } from "node:fs";
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { removeStaleTemporaries, writeSecretFile } from "../cli/secretFile.ts";
import { lockWithPidFile } from "../pidFileLock.ts";

// What the reference agent keeps between runs, in its state directory:
//   credential.json  who it is and its session pair (mode 0600, replaced atomically on every refresh)
//   tasks.json       ids of tasks it finished (bounded), and results not yet delivered (mode 0600)
//   agent.pid        the lock: two agents on one credential would spend each other's refresh tokens,
//                    which Keyplane treats as theft and answers by revoking the session.

export const CREDENTIAL_FILE = "credential.json";
export const TASKS_FILE = "tasks.json";
const LOCK_FILE = "agent.pid";

/** How many finished task ids are remembered (oldest forgotten first). */
export const REMEMBERED_TASKS = 1000;

export class StateDirError extends Error {}

export interface Credential {
  version: 1;
  /** The server the agent enrolled with (informational: a different --server only warns). */
  server: string;
  agentId: string;
  tenantId: string;
  accessToken: string;
  refreshToken: string;
  /** ISO instants. */
  expiresAt: string;
  refreshExpiresAt: string | null;
  /** When this pair was received: with expiresAt, the access token's lifetime. */
  obtainedAt: string;
  enrolledAt: string;
}

/**
 * Creates the state directory (0700) when missing and checks that it is a writable directory.
 * Throws StateDirError with an operator's message.
 */
export async function prepareStateDir(dir: string): Promise<string> {
  const resolved = path.resolve(dir);
  try {
    mkdirSync(resolved, { recursive: true, mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StateDirError(
      code === "EEXIST" || code === "ENOTDIR" ? `--state-dir is not a directory: ${resolved}` : `cannot create --state-dir ${resolved} (${code ?? "error"})`,
    );
  }
  if (!statSync(resolved).isDirectory()) throw new StateDirError(`--state-dir is not a directory: ${resolved}`);
  try {
    await access(resolved, constants.W_OK);
  } catch (error) {
    throw new StateDirError(`--state-dir is not writable: ${resolved} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  for (const file of [CREDENTIAL_FILE, TASKS_FILE]) await removeStaleTemporaries(path.join(resolved, file));
  return resolved;
}

/** Takes the state directory for this process; returns the release. Throws StateDirError when another live agent has it. */
export function lockStateDir(dir: string): () => void {
  return lockWithPidFile(path.join(dir, LOCK_FILE), {
    refused: (holder) => new StateDirError(`another agent (process ${holder}) is running on --state-dir ${dir}; one credential serves one agent process`),
    failed: (cause) => new StateDirError(cause ? `cannot lock --state-dir ${dir} (${cause.code ?? "error"})` : `could not lock --state-dir ${dir}`),
  });
}

/** The stored credential, null when there is none; StateDirError when the file is unreadable or not a credential. */
export async function readCredential(dir: string): Promise<Credential | null> {
  const file = path.join(dir, CREDENTIAL_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new StateDirError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new StateDirError(`${file} is not JSON; remove it and enroll again with --key`);
  }
  const strings = ["agentId", "tenantId", "accessToken", "refreshToken", "expiresAt"] as const;
  for (const field of strings) {
    if (typeof value[field] !== "string" || !value[field]) throw new StateDirError(`${file} has no ${field}; remove it and enroll again with --key`);
  }
  const now = new Date().toISOString();
  return {
    version: 1,
    server: typeof value.server === "string" ? value.server : "",
    agentId: value.agentId as string,
    tenantId: value.tenantId as string,
    accessToken: value.accessToken as string,
    refreshToken: value.refreshToken as string,
    expiresAt: value.expiresAt as string,
    refreshExpiresAt: typeof value.refreshExpiresAt === "string" ? value.refreshExpiresAt : null,
    obtainedAt: typeof value.obtainedAt === "string" ? value.obtainedAt : now,
    enrolledAt: typeof value.enrolledAt === "string" ? value.enrolledAt : now,
  };
}

/** Replaces credential.json atomically (temporary file 0600, fsync, rename, directory fsync). */
export async function writeCredential(dir: string, credential: Credential): Promise<void> {
  await writeSecretFile(path.join(dir, CREDENTIAL_FILE), JSON.stringify(credential, null, 2) + "\n");
}

/** A result the agent has but Keyplane has not acknowledged yet. */
export type PendingReport = { taskId: string; kind: string; idempotencyKey: string } & (
  | { outcome: "completed"; result: unknown }
  | { outcome: "failed"; error: string }
);

interface TasksFile {
  version: 1;
  /** Finished task ids, oldest first. */
  done: string[];
  outbox: PendingReport[];
}

/**
 * The agent's memory of tasks: finished ids (so a redelivered task is not run twice) and an outbox of
 * results to deliver (so a result survives Keyplane being down, and the agent being restarted).
 * Every change is written through, atomically; writes are serialized.
 */
export class TaskJournal {
  private readonly done: string[];
  private readonly doneSet: Set<string>;
  private readonly outbox: Map<string, PendingReport>;
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    data: TasksFile,
  ) {
    this.done = data.done.slice(-REMEMBERED_TASKS);
    this.doneSet = new Set(this.done);
    this.outbox = new Map(data.outbox.map((r) => [r.taskId, r]));
  }

  /** Loads tasks.json; a missing or unreadable file starts empty (and `warning` says why, for the latter). */
  static async open(dir: string): Promise<{ journal: TaskJournal; warning?: string }> {
    const file = path.join(dir, TASKS_FILE);
    let data: TasksFile = { version: 1, done: [], outbox: [] };
    let warning: string | undefined;
    try {
      const parsed = JSON.parse(await readFile(file, "utf8")) as Partial<TasksFile>;
      data = {
        version: 1,
        done: Array.isArray(parsed.done) ? parsed.done.filter((id): id is string => typeof id === "string") : [],
        outbox: Array.isArray(parsed.outbox) ? parsed.outbox.filter(isPendingReport) : [],
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT")
        warning = `${file} could not be read (${(error as NodeJS.ErrnoException).code ?? "not JSON"}); starting with no memory of finished tasks`;
    }
    return { journal: new TaskJournal(file, data), warning };
  }

  isDone(taskId: string): boolean {
    return this.doneSet.has(taskId) || this.outbox.has(taskId);
  }

  pending(): PendingReport[] {
    return [...this.outbox.values()];
  }

  /** Records a finished task and its result to deliver, in one write. */
  async finished(report: PendingReport): Promise<void> {
    this.remember(report.taskId);
    this.outbox.set(report.taskId, report);
    await this.save();
  }

  /** Keyplane has the result (or refused it for good). */
  async delivered(taskId: string): Promise<void> {
    if (!this.outbox.delete(taskId)) return;
    await this.save();
  }

  private remember(taskId: string): void {
    if (this.doneSet.has(taskId)) return;
    this.done.push(taskId);
    this.doneSet.add(taskId);
    while (this.done.length > REMEMBERED_TASKS) {
      this.doneSet.delete(this.done.shift()!);
    }
  }

  private save(): Promise<void> {
    const next = this.writing.then(() =>
      writeSecretFile(this.file, JSON.stringify({ version: 1, done: this.done, outbox: [...this.outbox.values()] } satisfies TasksFile) + "\n"),
    );
    this.writing = next.catch(() => {});
    return next;
  }
}

function isPendingReport(value: unknown): value is PendingReport {
  if (!value || typeof value !== "object") return false;
  const r = value as Record<string, unknown>;
  if (typeof r.taskId !== "string" || typeof r.idempotencyKey !== "string" || typeof r.kind !== "string") return false;
  return (r.outcome === "completed" && "result" in r) || (r.outcome === "failed" && typeof r.error === "string");
}
