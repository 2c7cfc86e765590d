import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { systemClock, type Clock } from "../cli/clock.ts";
import { UsageError, type CliIo } from "../cli/command.ts";
import { jsonLog, type Log, type LogLevel } from "../cli/jsonLog.ts";
import type { Config } from "../config.ts";
import { ApiError, ENROLL_AGENT, graphqlClient, graphqlEndpoint, sessionPairOf, websocketEndpoint, type GraphQLRequest } from "./keyplaneApi.ts";
import { AgentSession } from "./session.ts";
import { TASK_KINDS } from "./taskKinds.ts";
import { CREDENTIAL_FILE, lockStateDir, prepareStateDir, readCredential, StateDirError, TaskJournal, writeCredential, type Credential } from "./stateDir.ts";
import { backoffDelay, DEFAULT_WORKER_TIMING, runWorker, type WorkerTiming } from "./worker.ts";

/**
 * `keyplane agent run`: the reference agent. It enrolls once with an enrollment key (kpe_…) and keeps
 * the credential it gets in --state-dir (credential.json, 0600, replaced atomically on every refresh);
 * later runs reuse it. Then it heartbeats, subscribes to its tasks over graphql-ws (reconnecting with
 * backoff), polls pendingTasks as a safety net, runs the kinds it knows (taskKinds.ts) and reports
 * each result, which waits in tasks.json until Keyplane has it.
 *
 * Exit status: 0 stopped (SIGTERM/SIGINT), 2 usage or configuration, 3 refused (bad enrollment key,
 * dead credential), 4 Keyplane unreachable from the start (only with --exit-on-unreachable).
 * Logs are JSON lines on stderr; never a token or the key.
 *
 * Not the agent's to solve: a task claimed when the agent dies (crash, SIGKILL) stays claimed until
 * Keyplane times it out; an enrollment whose answer is lost in transit spent a one-time key.
 */

const OPTIONS = {
  server: { type: "string" },
  key: { type: "string" },
  "key-file": { type: "string" },
  "state-dir": { type: "string" },
  "heartbeat-seconds": { type: "string" },
  concurrency: { type: "string" },
  "exit-on-unreachable": { type: "boolean" },
  // Not in the usage text, for tests: the safety poll's period and the reconnect backoff's cap.
  "poll-seconds": { type: "string" },
  "reconnect-max-seconds": { type: "string" },
} as const;

/** Attempts before --exit-on-unreachable gives up (about 15 s of backoff). */
export const UNREACHABLE_ATTEMPTS = 5;

export interface AgentRunOptions {
  server: string;
  key?: string;
  keyFile?: string;
  stateDir: string;
  concurrency: number;
  exitOnUnreachable: boolean;
  timing: WorkerTiming;
}

const KEY = /^kpe_[\x21-\x7e]{8,}$/;

function positive(flag: string, value: string, { integer = false, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(n) || n <= 0 || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} is a positive ${integer ? "whole " : ""}number${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ""} (got '${value}')`);
  }
  return n;
}

/** --server: Keyplane's http(s) URL without credentials, as its GraphQL endpoint. Throws UsageError. */
export function serverOption(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--server is an http(s) URL (got '${value}')`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--server is an http(s) URL (got '${value}')`);
  if (url.username || url.password) throw new UsageError("--server must not carry credentials");
  return graphqlEndpoint(url.toString());
}

/** The command line of `agent run` (after `agent run`). Throws UsageError. */
export function parseAgentRunArgs(args: string[]): AgentRunOptions {
  const v = parseArgs({ args, options: OPTIONS, allowPositionals: false, strict: true }).values;
  if (!v.server) throw new UsageError("agent run needs --server (Keyplane's URL, e.g. https://keyplane.example.com)");
  const server = serverOption(v.server);
  if (v.key !== undefined && v["key-file"] !== undefined) throw new UsageError("--key and --key-file are alternatives");
  // Never echo what was given: it may be a real key with a typo.
  if (v.key !== undefined && !KEY.test(v.key)) throw new UsageError("--key is an enrollment key: kpe_ followed by its secret");
  if (v["state-dir"] === "") throw new UsageError("--state-dir is a directory");

  const timing: WorkerTiming = { ...DEFAULT_WORKER_TIMING };
  if (v["heartbeat-seconds"] !== undefined) timing.heartbeatMs = positive("--heartbeat-seconds", v["heartbeat-seconds"], { max: 86_400 }) * 1000;
  if (v["poll-seconds"] !== undefined) timing.pollMs = positive("--poll-seconds", v["poll-seconds"], { max: 86_400 }) * 1000;
  if (v["reconnect-max-seconds"] !== undefined) {
    timing.backoffMaxMs = positive("--reconnect-max-seconds", v["reconnect-max-seconds"], { max: 3_600 }) * 1000;
    timing.backoffBaseMs = Math.min(timing.backoffBaseMs, timing.backoffMaxMs);
  }
  const concurrency = v.concurrency === undefined ? 4 : positive("--concurrency", v.concurrency, { integer: true, max: 64 });

  return {
    server,
    key: v.key,
    keyFile: v["key-file"],
    stateDir: v["state-dir"] ?? ".keyplane-agent",
    concurrency,
    exitOnUnreachable: Boolean(v["exit-on-unreachable"]),
    timing,
  };
}

/** Test seams. */
export interface AgentRunDeps {
  /** Stops the agent instead of SIGTERM/SIGINT. */
  signal?: AbortSignal;
  fetch?: typeof fetch;
  clock?: Clock;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: 100 };

export async function runAgentRun(args: string[], config: Config, io: CliIo, deps: AgentRunDeps = {}): Promise<number> {
  const options = parseAgentRunArgs(args);
  const clock = deps.clock ?? systemClock;
  const threshold = LEVELS[config.logLevel] ?? LEVELS.info!;
  const write = jsonLog(io.err, {}, clock);
  let agentId: string | undefined;
  const log: Log = (level: LogLevel, msg, fields = {}) => {
    if ((LEVELS[level] ?? 0) >= threshold) write(level, msg, agentId ? { agentId, ...fields } : fields);
  };

  // Signals first: a stop during enrollment or a long retry is still a clean exit 0.
  const stop = new AbortController();
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  if (deps.signal) {
    if (deps.signal.aborted) stop.abort();
    else deps.signal.addEventListener("abort", () => stop.abort(), { once: true });
  } else {
    for (const name of ["SIGTERM", "SIGINT"] as const) {
      const handler = () => {
        log("info", `${name} received, stopping`);
        stop.abort();
      };
      handlers.push([name, handler]);
      process.on(name, handler);
    }
  }

  let unlock = () => {};
  try {
    let stateDir: string;
    try {
      stateDir = await prepareStateDir(options.stateDir);
      unlock = lockStateDir(stateDir);
    } catch (error) {
      if (!(error instanceof StateDirError)) throw error;
      log("error", error.message, { kind: "config" });
      return 2;
    }

    let credential: Credential | null;
    try {
      credential = await readCredential(stateDir);
    } catch (error) {
      if (!(error instanceof StateDirError)) throw error;
      log("error", error.message, { kind: "config" });
      return 2;
    }

    const request = graphqlClient(options.server, deps.fetch ?? fetch);
    const facts = hostFacts();
    let contacted = false;
    if (credential) {
      agentId = credential.agentId;
      if (options.key !== undefined || options.keyFile !== undefined)
        log("info", "already enrolled; --key is ignored (remove credential.json to enroll again)", { stateDir });
      if (credential.server && credential.server !== options.server)
        log("warn", "the credential was issued by another --server", { enrolledWith: credential.server, server: options.server });
    } else {
      let key: string;
      try {
        key = await enrollmentKey(options, stateDir);
      } catch (error) {
        if (!(error instanceof StateDirError)) throw error;
        log("error", error.message, { kind: "config" });
        return 2;
      }
      const enrolled = await enroll({ request, key, facts, server: options.server, options, log, clock, signal: stop.signal });
      if (typeof enrolled === "number") return enrolled;
      credential = enrolled;
      agentId = credential.agentId;
      try {
        await writeCredential(stateDir, credential);
      } catch (error) {
        log(
          "error",
          `enrolled, but could not write ${path.join(stateDir, CREDENTIAL_FILE)} (${(error as NodeJS.ErrnoException).code ?? String(error)}); the key is spent: create a new one`,
          { kind: "config" },
        );
        return 2;
      }
      contacted = true;
      log("info", "enrolled", { tenantId: credential.tenantId, credential: path.join(stateDir, CREDENTIAL_FILE) });
    }
    if (stop.signal.aborted) return 0;

    const { journal, warning } = await TaskJournal.open(stateDir);
    if (warning) log("warn", warning);
    const session = new AgentSession(credential, { request, stateDir, log, now: () => clock.now(), requestTimeoutMs: options.timing.requestTimeoutMs });
    log("info", "agent starting", { server: options.server, stateDir, kinds: Object.keys(TASK_KINDS), version: facts.agentVersion });
    return await runWorker({
      websocketUrl: websocketEndpoint(options.server),
      request,
      session,
      journal,
      log,
      clock,
      timing: options.timing,
      concurrency: options.concurrency,
      facts,
      maxUnreachableAttempts: options.exitOnUnreachable ? UNREACHABLE_ATTEMPTS : undefined,
      contacted,
      stop: stop.signal,
      fetch: deps.fetch,
    });
  } finally {
    for (const [name, handler] of handlers) process.off(name, handler);
    unlock();
  }
}

async function enrollmentKey(options: AgentRunOptions, stateDir: string): Promise<string> {
  if (options.key !== undefined) return options.key;
  if (options.keyFile === undefined) {
    throw new StateDirError(`no credential in ${stateDir}: enroll the agent once with --key (or --key-file) and an enrollment key (kpe_…)`);
  }
  let key: string;
  try {
    key = (await readFile(options.keyFile, "utf8")).trim();
  } catch (error) {
    throw new StateDirError(`cannot read --key-file ${options.keyFile} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (!KEY.test(key)) throw new StateDirError(`--key-file ${options.keyFile} does not hold an enrollment key (kpe_…)`);
  return key;
}

interface EnrollRequest {
  request: GraphQLRequest;
  key: string;
  facts: ReturnType<typeof hostFacts>;
  server: string;
  options: AgentRunOptions;
  log: Log;
  clock: Clock;
  signal: AbortSignal;
}

/** The new credential, or the exit status: 3 refused, 4 unreachable (--exit-on-unreachable), 0 stopped. */
async function enroll(e: EnrollRequest): Promise<Credential | number> {
  const { hostname, os: osName, arch, agentVersion } = e.facts;
  for (let attempt = 1; ; attempt++) {
    if (e.signal.aborted) return 0;
    let delay: number;
    try {
      const data = await e.request<{ enrollAgent?: Record<string, unknown> | null }>(
        ENROLL_AGENT,
        { input: { key: e.key, hostname, os: osName, arch, agentVersion } },
        { timeoutMs: e.options.timing.requestTimeoutMs },
      );
      const answer = data.enrollAgent ?? {};
      const pair = sessionPairOf(answer, "enrollAgent");
      if (typeof answer.agentId !== "string" || !answer.agentId || typeof answer.tenantId !== "string" || !answer.tenantId) {
        throw new ApiError("unavailable", "Keyplane's answer to enrollAgent names no agent", "bad_answer");
      }
      const now = new Date(e.clock.now()).toISOString();
      return { version: 1, server: e.server, agentId: answer.agentId, tenantId: answer.tenantId, ...pair, obtainedAt: now, enrolledAt: now };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.kind === "auth") {
        e.log("error", "Keyplane refused the enrollment key: it is wrong, expired, revoked or used up; ask for a new one", {
          code: error.code,
          kind: "refused",
        });
        return 3;
      }
      if (error.kind === "refused" || error.kind === "conflict") {
        e.log("error", `Keyplane refused the enrollment: ${error.message}`, { code: error.code, kind: "refused" });
        return 3;
      }
      if (error.kind === "unavailable" && e.options.exitOnUnreachable && attempt >= UNREACHABLE_ATTEMPTS) {
        e.log("error", `Keyplane could not be reached after ${attempt} attempts (${error.message}); giving up (--exit-on-unreachable)`, {
          kind: "unavailable",
        });
        return 4;
      }
      delay = error.retryAfterMs ?? backoffDelay(attempt, e.options.timing, e.clock.random);
      e.log("warn", "could not enroll yet; retrying", { error: error.message, attempt, retryInMs: delay });
    }
    await e.clock.sleep(delay, e.signal);
  }
}

let version: string | undefined;

/** What the agent tells Keyplane about its host. */
export function hostFacts(): { hostname: string; os: string; arch: string; agentVersion: string } {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
      version = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      version = "unknown";
    }
  }
  return { hostname: os.hostname(), os: process.platform, arch: process.arch, agentVersion: version };
}
