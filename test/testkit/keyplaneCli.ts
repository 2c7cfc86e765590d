import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { runCli } from "../../src/cli/main.ts";
import { keepCommandLog } from "./scratch.ts";
import { releaseMemory } from "./memory.ts";

// The `keyplane` command line as the e2e suites run it: in this process (fast, and what most tests
// need) or as bin/keyplane.mjs in a process of its own (what an operator's shell or a container runs).

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = path.join(ROOT, "bin/keyplane.mjs");

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/**
 * Where a run's output goes for the secret scan after the run: keepCommandLog(command, name, …) of
 * stderr, or of stdout and stderr. Each suite keeps what it always kept: a command that prints a
 * secret on purpose (token mint) must not be kept.
 */
export interface KeptLog {
  command: string;
  name: string;
  /** "err" (the default) or "both" (stdout, then stderr). */
  streams?: "err" | "both";
}

function keep(log: KeptLog | undefined, out: string, err: string): void {
  if (log) keepCommandLog(log.command, log.name, log.streams === "both" ? out + err : err);
}

/** Runs `keyplane argv…` in this process, capturing what it writes. */
export async function runKeyplane(argv: string[], env: Record<string, string>, log?: KeptLog): Promise<CliResult> {
  let out = "";
  let err = "";
  const code = await runCli(argv, env, { out: (s) => void (out += s), err: (s) => void (err += s), isTty: false });
  // Each command opened (and closed) an embedded database of its own.
  releaseMemory();
  keep(log, out, err);
  return { code, out, err };
}

export interface SpawnOptions {
  /** SIGKILL after this long, so a hung command fails its test instead of the run. None by default. */
  timeoutMs?: number;
  log?: KeptLog;
}

export interface KeyplaneProcess {
  child: ChildProcess;
  /** stdout so far. */
  out(): string;
  /** stderr so far. */
  err(): string;
  /** Once the process has exited and its output is all read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The same moment as a CliResult; a process ended by a signal gets code 128. */
  done: Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
}

/** Processes still running, for killKeyplaneProcesses. */
const running = new Set<ChildProcess>();

/**
 * Starts bin/keyplane.mjs argv… as its own process. Its environment is PATH and env only: nothing
 * of the test run's environment (DATABASE_URL, LOG_LEVEL…) leaks into the command.
 */
export function spawnKeyplane(argv: string[], env: Record<string, string>, options: SpawnOptions = {}): KeyplaneProcess {
  const child = spawn(process.execPath, [BIN, ...argv], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
  // "close", not "exit": only then is all of stdout and stderr read, for the test and the log.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      keep(options.log, out, err);
      resolve({ code, signal });
    });
  });
  const done = exited.then(({ code, signal }) => ({ code: code ?? (signal ? 128 : 1), out, err }));
  // A caller awaits one of the two (or neither, for a process it kills): the other must not fail the
  // run as an unhandled rejection. Whoever awaits still gets the error.
  exited.catch(() => {});
  done.catch(() => {});
  return { child, out: () => out, err: () => err, exited, done, kill: (signal) => void child.kill(signal) };
}

/** Runs bin/keyplane.mjs argv… to its end. */
export function runKeyplaneProcess(argv: string[], env: Record<string, string>, options: SpawnOptions = {}): Promise<CliResult> {
  return spawnKeyplane(argv, env, options).done;
}

/** Kills (SIGKILL) every process spawnKeyplane started that is still running, and waits for them: for afterAll. */
export async function killKeyplaneProcesses(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          // close also follows a failed spawn's error, so it always comes.
          child.once("close", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

export interface LogLine {
  time: string;
  /** A string; logLines lets a number through only with numericLevel. */
  level: string;
  msg: string;
  [field: string]: unknown;
}

/**
 * Every line of text (a command's stderr) is a JSON object with time, level and msg. numericLevel
 * also accepts pino's numeric levels, for a command whose level may be either.
 */
export function logLines(text: string, options: { numericLevel?: boolean } = {}): LogLine[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const parsed = JSON.parse(line) as LogLine;
      expect(parsed).toMatchObject({ time: expect.any(String), msg: expect.any(String) });
      const levelOk = typeof parsed.level === "string" || (options.numericLevel === true && typeof parsed.level === "number");
      expect(levelOk, `level ${JSON.stringify(parsed.level)} in ${line}`).toBe(true);
      return parsed;
    });
}
