import { randomUUID } from "node:crypto";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import type { Clock } from "../cli/clock.ts";
import type { Log } from "../cli/jsonLog.ts";
import {
  AGENT_HEARTBEAT,
  AGENT_TASKS,
  ApiError,
  CLAIM_TASK,
  COMPLETE_TASK,
  FAIL_TASK,
  failureOfCode,
  IDENTITY_EVENTS,
  PENDING_TASKS,
  REPORT_TASK_PROGRESS,
  taskOf,
  type AgentTask,
  type GraphQLRequest,
} from "./keyplaneApi.ts";
import { type AgentSession, DeadCredentialError } from "./session.ts";
import type { PendingReport, TaskJournal } from "./stateDir.ts";
import { runTask } from "./taskKinds.ts";

// The running agent: a graphql-ws subscription to its tasks (reconnected with backoff, token refreshed
// on 4401/4403), a pendingTasks poll after every connect and every minute as a safety net, heartbeats,
// and per task: claim, run, remember, report. A task is never lost to a disconnect: Keyplane re-sends
// every pending task on connect, and a result Keyplane could not take yet waits in tasks.json.

export interface WorkerTiming {
  heartbeatMs: number;
  pollMs: number;
  /** Reconnect backoff: first delay and cap (exponential, jittered). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
  /** A ping the server does not answer within this long drops the connection. */
  pongTimeoutMs: number;
  keepAliveMs: number;
  /** On stop, how long running tasks may take to finish and report before they are abandoned. */
  stopGraceMs: number;
}

export const DEFAULT_WORKER_TIMING: WorkerTiming = {
  heartbeatMs: 30_000,
  pollMs: 60_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 30_000,
  requestTimeoutMs: 15_000,
  pongTimeoutMs: 10_000,
  keepAliveMs: 15_000,
  stopGraceMs: 5_000,
};

/** Claims that fail for want of an answer are tried this often before the task is left to a redelivery. */
const CLAIM_ATTEMPTS = 3;
const PENDING_PAGE = 50;

export interface WorkerOptions {
  websocketUrl: string;
  request: GraphQLRequest;
  session: AgentSession;
  journal: TaskJournal;
  log: Log;
  clock: Clock;
  timing: WorkerTiming;
  concurrency: number;
  /** Heartbeat facts (uptimeSeconds is added per beat). */
  facts: { hostname: string; os: string; arch: string; agentVersion: string };
  /** Stop when the server was never reached after this many consecutive attempts (exit 4); undefined = keep trying. */
  maxUnreachableAttempts?: number;
  /** Whether Keyplane answered already (an enrollment just now). */
  contacted: boolean;
  /** SIGTERM/SIGINT (or a test) stops the agent: exit 0. */
  stop: AbortSignal;
  fetch?: typeof fetch;
}

/** Reconnect delay after the n-th consecutive failure (n ≥ 1): base·2^(n-1) capped, times 0.5–1. */
export function backoffDelay(failures: number, timing: Pick<WorkerTiming, "backoffBaseMs" | "backoffMaxMs">, random: () => number): number {
  const raw = Math.min(timing.backoffMaxMs, timing.backoffBaseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(raw * (0.5 + 0.5 * random()));
}

interface Fatal {
  code: number;
  message: string;
}

/** Runs until stopped (0), the credential is refused (3), or the server is unreachable from the start (4). */
export async function runWorker(options: WorkerOptions): Promise<number> {
  return new Worker(options).run();
}

class Worker {
  private readonly halt = new AbortController();
  /** Aborted after the stop grace: running tasks give up. */
  private readonly abandon = new AbortController();
  private fatal: Fatal | null = null;
  private contacted: boolean;
  private readonly startedAt: number;
  /** Tasks offered and not finished: waiting for a slot, claiming, running or reporting. */
  private readonly known = new Set<string>();
  private readonly queue: AgentTask[] = [];
  private running = 0;
  private readonly work = new Set<Promise<void>>();
  private polling = false;
  private pollAgain = false;

  constructor(private readonly o: WorkerOptions) {
    this.contacted = o.contacted;
    this.startedAt = o.clock.now();
  }

  async run(): Promise<number> {
    const onStop = () => this.halt.abort();
    if (this.o.stop.aborted) this.halt.abort();
    else this.o.stop.addEventListener("abort", onStop, { once: true });

    const loops = [this.connectionLoop(), this.heartbeatLoop(), this.pollLoop(), this.refreshLoop()].map((p) => p.catch((error) => this.crash(error)));
    for (const report of this.o.journal.pending()) {
      this.o.log("info", "delivering a result kept from an earlier run", { taskId: report.taskId, outcome: report.outcome });
      this.track(this.deliver(report));
    }
    await new Promise<void>((resolve) => (this.halt.signal.aborted ? resolve() : this.halt.signal.addEventListener("abort", () => resolve(), { once: true })));
    this.o.stop.removeEventListener("abort", onStop);
    await Promise.all(loops);

    // Running tasks get a grace period to finish and report; then they are abandoned (failed, best effort).
    this.queue.length = 0;
    if (this.work.size) {
      this.o.log("info", "waiting for running tasks before stopping", { tasks: this.running, graceMs: this.o.timing.stopGraceMs });
      const grace = new AbortController();
      await Promise.race([Promise.all(this.work), this.o.clock.sleep(this.o.timing.stopGraceMs, grace.signal)]);
      grace.abort();
      this.abandon.abort();
      await Promise.all(this.work);
    }
    await this.o.session.settle();
    if (this.fatal) {
      this.o.log("error", this.fatal.message, { exitCode: this.fatal.code });
      return this.fatal.code;
    }
    this.o.log("info", "stopped");
    return 0;
  }

  private get stopping(): boolean {
    return this.halt.signal.aborted;
  }

  private stopWith(code: number, message: string): void {
    this.fatal ??= { code, message };
    this.halt.abort();
  }

  /** An unexpected error in a loop: the agent cannot go on (exit 1). */
  private crash(error: unknown): void {
    if (error instanceof DeadCredentialError) {
      this.stopWith(3, error.message);
      return;
    }
    this.stopWith(1, `agent failed: ${error instanceof Error ? error.message : String(error)}`);
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((error) => this.crash(error)).finally(() => this.work.delete(tracked));
    this.work.add(tracked);
  }

  private sleep(ms: number): Promise<void> {
    return this.o.clock.sleep(ms, this.halt.signal);
  }

  private contact(): void {
    if (!this.contacted) this.o.log("info", "Keyplane reached", { agentId: this.o.session.credential.agentId });
    this.contacted = true;
  }

  /**
   * An authenticated request: the token refreshed when due; on a refusal (401) refreshed and sent once
   * more. DeadCredentialError stops the agent (exit 3) and is rethrown.
   */
  private async call<T>(query: string, variables: Record<string, unknown>, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let token: string | undefined;
      try {
        token = await this.o.session.accessToken();
        const data = await this.o.request<T>(query, variables, { token, timeoutMs: this.o.timing.requestTimeoutMs, ...options });
        this.contact();
        return data;
      } catch (error) {
        if (error instanceof DeadCredentialError) {
          this.stopWith(3, error.message);
          throw error;
        }
        if (error instanceof ApiError && error.kind !== "unavailable") this.contact();
        if (!(error instanceof ApiError) || error.kind !== "auth" || attempt > 1 || token === undefined) throw error;
        try {
          await this.o.session.refused(token);
        } catch (refreshError) {
          if (refreshError instanceof DeadCredentialError) this.stopWith(3, refreshError.message);
          throw refreshError;
        }
      }
    }
  }

  // ------------------------------------------------------------------ subscription

  private async connectionLoop(): Promise<void> {
    let failures = 0;
    let authFailures = 0;
    while (!this.stopping) {
      const { connected, error, tokenUsed } = await this.connectOnce(() => {
        failures = 0;
        authFailures = 0;
      });
      if (this.stopping) return;
      if (error instanceof DeadCredentialError) return this.stopWith(3, error.message);
      const kind = classifyDisconnect(error);
      if (kind.auth) {
        authFailures++;
        // A connection outliving its token is closed by Keyplane (4403 "Token expired"): the session
        // has moved on already, so reconnecting with the current token is all it takes.
        const stale = tokenUsed !== undefined && tokenUsed !== this.o.session.credential.accessToken;
        this.o.log(
          stale ? "info" : "warn",
          stale ? "the connection's token expired; reconnecting with the current one" : "Keyplane refused the agent's token on the subscription; refreshing it",
          {
            reason: kind.reason,
          },
        );
        try {
          if (tokenUsed && !stale) await this.o.session.refused(tokenUsed);
        } catch (refreshError) {
          if (refreshError instanceof DeadCredentialError) return this.stopWith(3, refreshError.message);
          this.o.log("warn", "could not refresh the session", { error: refreshError instanceof Error ? refreshError.message : String(refreshError) });
          failures++;
        }
        // The first refusal is a token that just expired: reconnect at once. Repeated ones back off.
        if (authFailures > 1) {
          const delay = backoffDelay(authFailures, this.o.timing, this.o.clock.random);
          this.o.log("warn", "reconnecting after repeated refusals", { attempt: authFailures, retryInMs: delay });
          await this.sleep(delay);
        }
        continue;
      }
      failures++;
      if (!connected && !this.contacted && this.o.maxUnreachableAttempts !== undefined && failures >= this.o.maxUnreachableAttempts) {
        return this.stopWith(4, `Keyplane could not be reached after ${failures} attempts (${kind.reason}); giving up (--exit-on-unreachable)`);
      }
      const delay = backoffDelay(failures, this.o.timing, this.o.clock.random);
      this.o.log(
        connected ? "warn" : failures > 1 ? "info" : "warn",
        connected ? "disconnected from Keyplane; reconnecting" : "could not connect to Keyplane; retrying",
        {
          reason: kind.reason,
          retryInMs: delay,
          attempt: failures,
        },
      );
      await this.sleep(delay);
    }
  }

  /** One connection and subscription, until it ends. `onConnected` runs on each connection_ack. */
  private connectOnce(onConnected: () => void): Promise<{ connected: boolean; error: unknown; tokenUsed?: string }> {
    return new Promise((resolve) => {
      let connected = false;
      let tokenUsed: string | undefined;
      let pongTimer: NodeJS.Timeout | undefined;
      let socket: WebSocket | undefined;
      let settled = false;
      let client: Client | undefined;
      let unsubscribe = () => {};
      const finish = (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(pongTimer);
        this.halt.signal.removeEventListener("abort", onHalt);
        unsubscribe();
        void client?.dispose();
        resolve({ connected, error, tokenUsed });
      };
      const onHalt = () => finish(undefined);
      this.halt.signal.addEventListener("abort", onHalt, { once: true });

      client = createClient({
        url: this.o.websocketUrl,
        webSocketImpl: WebSocket,
        lazy: true,
        retryAttempts: 0,
        keepAlive: this.o.timing.keepAliveMs,
        connectionAckWaitTimeout: this.o.timing.requestTimeoutMs,
        connectionParams: async () => {
          tokenUsed = await this.o.session.accessToken();
          return { authorization: `Bearer ${tokenUsed}` };
        },
        on: {
          connected: (opened) => {
            socket = opened as WebSocket;
            connected = true;
            this.contact();
            onConnected();
            this.o.log("info", "connected; subscribed to tasks", { agentId: this.o.session.credential.agentId });
            // Pending tasks come first on the subscription; the poll covers a server that missed one.
            this.pollSoon();
          },
          ping: (received) => {
            if (received) return;
            clearTimeout(pongTimer);
            pongTimer = setTimeout(() => {
              this.o.log("warn", "Keyplane did not answer a ping; dropping the connection", { timeoutMs: this.o.timing.pongTimeoutMs });
              socket?.terminate();
            }, this.o.timing.pongTimeoutMs);
          },
          pong: (received) => {
            if (received) clearTimeout(pongTimer);
          },
        },
      });
      unsubscribe = client.subscribe<{ agentTasks?: unknown }>(
        { query: AGENT_TASKS },
        {
          next: (result) => {
            if (result.errors?.length) {
              this.o.log("warn", "the task subscription sent errors", { errors: result.errors.map((e) => e.message).slice(0, 3) });
            }
            const task = taskOf(result.data?.agentTasks);
            if (task) this.offer(task, "subscription");
          },
          error: (error) => finish(error ?? new Error("subscription ended")),
          complete: () => finish(new Error("the server ended the subscription")),
        },
      );
      // On the same connection, the agent's own identity events: identity.expiring means a person has to
      // link its GitHub account again. A Keyplane without them refuses this one subscription only.
      const unsubscribeTasks = unsubscribe;
      const unsubscribeIdentity = client.subscribe<{ identityEvents?: unknown }>(
        { query: IDENTITY_EVENTS },
        {
          next: (result) => this.identityEvent(result.data?.identityEvents),
          error: (error) => {
            if (!settled) this.o.log("debug", "no identity events on this connection", { reason: classifyDisconnect(error).reason });
          },
          complete: () => {},
        },
      );
      unsubscribe = () => {
        unsubscribeIdentity();
        unsubscribeTasks();
      };
    });
  }

  /** Says in the log what an identity event of the agent's own means for its operator. */
  private identityEvent(value: unknown): void {
    if (!value || typeof value !== "object") return;
    const event = value as { type?: unknown; data?: Record<string, unknown> | null };
    const data = event.data ?? {};
    const facts = { login: data.login, app: data.app, identityId: data.identityId };
    if (event.type === "identity.expiring") {
      this.o.log("warn", "the agent's GitHub identity must be linked again (keyplane agent link-github); until then GitHub tasks acting as it will fail", {
        ...facts,
        reason: data.reason,
        refreshExpiresAt: data.refreshExpiresAt,
      });
    } else if (event.type === "identity.linked") {
      this.o.log("info", "GitHub identity linked", facts);
    } else if (event.type === "identity.unlinked") {
      this.o.log("warn", "GitHub identity unlinked; GitHub tasks acting as it will fail until one is linked", facts);
    } else {
      this.o.log("debug", "identity event", { type: event.type, ...facts });
    }
  }

  // ------------------------------------------------------------------ poll, heartbeat, refresh

  private pollSoon(): void {
    if (this.stopping) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    void (async () => {
      try {
        do {
          this.pollAgain = false;
          await this.pollOnce();
        } while (this.pollAgain && !this.stopping);
      } finally {
        this.polling = false;
      }
    })().catch((error) => this.crash(error));
  }

  private async pollOnce(): Promise<void> {
    try {
      const data = await this.call<{ pendingTasks?: unknown }>(PENDING_TASKS, { first: PENDING_PAGE }, { signal: this.halt.signal });
      const tasks = Array.isArray(data.pendingTasks) ? data.pendingTasks.map(taskOf).filter((t): t is AgentTask => t !== null) : [];
      for (const task of tasks) this.offer(task, "poll");
    } catch (error) {
      if (error instanceof DeadCredentialError || this.stopping) return;
      this.o.log(error instanceof ApiError && error.kind === "unavailable" ? "debug" : "warn", "could not poll pending tasks", { error: message(error) });
    }
  }

  private async pollLoop(): Promise<void> {
    while (!this.stopping) {
      await this.sleep(this.o.timing.pollMs);
      this.pollSoon();
    }
  }

  private async heartbeatLoop(): Promise<void> {
    let failing = false;
    while (!this.stopping) {
      try {
        const { hostname, os, arch, agentVersion } = this.o.facts;
        const uptimeSeconds = Math.floor((this.o.clock.now() - this.startedAt) / 1000);
        await this.call(
          AGENT_HEARTBEAT,
          { input: { status: this.running > 0 ? "busy" : "ready", facts: { hostname, os, arch, agentVersion, uptimeSeconds } } },
          { signal: this.halt.signal },
        );
        if (failing) this.o.log("info", "heartbeat accepted again");
        failing = false;
      } catch (error) {
        if (error instanceof DeadCredentialError || this.stopping) return;
        // Unreachable: said once per outage (the connection loop reports the outage too).
        const unavailable = error instanceof ApiError && error.kind === "unavailable";
        if (!failing || !unavailable) this.o.log("warn", "heartbeat failed", { error: message(error) });
        failing = true;
      }
      await this.sleep(this.o.timing.heartbeatMs);
    }
  }

  private async refreshLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      const wait = failures
        ? backoffDelay(failures, { backoffBaseMs: 5_000, backoffMaxMs: 60_000 }, this.o.clock.random)
        : this.o.session.refreshDueAt() - this.o.clock.now();
      await this.sleep(Math.min(Math.max(wait, 1_000), 3_600_000));
      if (this.stopping || this.o.clock.now() < this.o.session.refreshDueAt()) continue;
      try {
        await this.o.session.refresh();
        failures = 0;
      } catch (error) {
        if (error instanceof DeadCredentialError) return this.stopWith(3, error.message);
        failures++;
        this.o.log("warn", "could not refresh the session; retrying", { error: message(error), expiresAt: this.o.session.credential.expiresAt });
      }
    }
  }

  // ------------------------------------------------------------------ tasks

  private offer(task: AgentTask, via: "subscription" | "poll"): void {
    if (this.stopping) return;
    if (task.status !== "pending") {
      this.o.log("debug", "task is not pending; skipped", { taskId: task.id, status: task.status, via });
      return;
    }
    if (this.known.has(task.id) || this.o.journal.isDone(task.id)) {
      this.o.log("debug", "task already taken care of", { taskId: task.id, via });
      return;
    }
    this.known.add(task.id);
    this.o.log("info", "task received", { taskId: task.id, kind: task.kind, via });
    this.queue.push(task);
    this.pump();
  }

  private pump(): void {
    while (!this.stopping && this.running < this.o.concurrency && this.queue.length) {
      const task = this.queue.shift()!;
      this.running++;
      this.track(
        this.handle(task).finally(() => {
          this.running--;
          this.known.delete(task.id);
          this.pump();
        }),
      );
    }
  }

  private async handle(task: AgentTask): Promise<void> {
    if (!(await this.claim(task))) return;
    const started = this.o.clock.now();
    const outcome = await runTask(task, {
      stop: this.abandon.signal,
      fetch: this.o.fetch,
      // The agent's own credential: GitHub operations are Keyplane's to do, as the agent's linked identity.
      keyplane: <T>(query: string, variables: Record<string, unknown>, options = {}) => this.call<T>(query, variables, options),
      progress: (progress, text) => {
        this.call(REPORT_TASK_PROGRESS, { id: task.id, progress, message: text ?? null }).catch((error) => {
          this.o.log("debug", "progress not reported", { taskId: task.id, error: message(error) });
        });
      },
    });
    const report: PendingReport =
      outcome.outcome === "completed"
        ? { taskId: task.id, kind: task.kind, idempotencyKey: `agent-report-${randomUUID()}`, outcome: "completed", result: outcome.result }
        : { taskId: task.id, kind: task.kind, idempotencyKey: `agent-report-${randomUUID()}`, outcome: "failed", error: outcome.error };
    this.o.log(outcome.outcome === "completed" ? "info" : "warn", outcome.outcome === "completed" ? "task ran" : "task failed", {
      taskId: task.id,
      kind: task.kind,
      durationMs: this.o.clock.now() - started,
      ...(outcome.outcome === "failed" ? { error: outcome.error } : {}),
    });
    try {
      await this.o.journal.finished(report);
    } catch (error) {
      this.o.log("error", "could not record the finished task in the state directory", { taskId: task.id, error: message(error) });
    }
    await this.deliver(report);
  }

  /** true when this agent has the task now. */
  private async claim(task: AgentTask): Promise<boolean> {
    // One key for every try of this claim: a claim that landed but whose answer was lost is answered again.
    const idempotencyKey = `agent-claim-${randomUUID()}`;
    for (let attempt = 1; ; attempt++) {
      if (this.stopping) return false;
      try {
        // Not cut off by a stop: a claim that landed is then run (or failed) within the stop grace, never left behind.
        await this.call(CLAIM_TASK, { id: task.id }, { idempotencyKey });
        this.o.log("info", "task claimed", { taskId: task.id, kind: task.kind });
        return true;
      } catch (error) {
        if (error instanceof DeadCredentialError) return false;
        if (error instanceof ApiError && error.kind === "conflict") {
          this.o.log("info", "task taken by another attempt or no longer pending; skipped", { taskId: task.id });
          return false;
        }
        const retryable = error instanceof ApiError && (error.kind === "unavailable" || error.kind === "rate_limited");
        if (!retryable || attempt >= CLAIM_ATTEMPTS) {
          this.o.log(
            "warn",
            retryable ? "could not claim the task; it stays pending and comes again on reconnect or the next poll" : "Keyplane refused the claim; task skipped",
            {
              taskId: task.id,
              error: message(error),
            },
          );
          return false;
        }
        await this.sleep(error.retryAfterMs ?? backoffDelay(attempt, this.o.timing, this.o.clock.random));
      }
    }
  }

  /** Reports a result until Keyplane takes it or refuses it for good; kept in tasks.json meanwhile. */
  private async deliver(report: PendingReport): Promise<void> {
    const [query, variables] =
      report.outcome === "completed" ? [COMPLETE_TASK, { id: report.taskId, result: report.result }] : [FAIL_TASK, { id: report.taskId, error: report.error }];
    for (let attempt = 1; ; attempt++) {
      try {
        // Not cut off by a stop: a report in flight finishes (bounded by the request timeout).
        await this.call(query, variables, { idempotencyKey: report.idempotencyKey });
        this.o.log("info", report.outcome === "completed" ? "task completed" : "task failure reported", { taskId: report.taskId, kind: report.kind });
        await this.forget(report);
        return;
      } catch (error) {
        if (error instanceof DeadCredentialError) return;
        if (error instanceof ApiError && (error.kind === "conflict" || error.kind === "refused")) {
          // Timed out on Keyplane's side, cancelled, or already reported: nothing more to do.
          this.o.log("warn", "Keyplane did not take the task's result", { taskId: report.taskId, error: error.message });
          await this.forget(report);
          return;
        }
        if (this.stopping) {
          this.o.log("warn", "the task's result is kept in the state directory and delivered on the next start", {
            taskId: report.taskId,
            error: message(error),
          });
          return;
        }
        const delay =
          error instanceof ApiError && error.retryAfterMs !== undefined ? error.retryAfterMs : backoffDelay(attempt, this.o.timing, this.o.clock.random);
        this.o.log(attempt === 1 ? "warn" : "debug", "could not report the task's result; retrying", {
          taskId: report.taskId,
          error: message(error),
          retryInMs: delay,
        });
        await this.sleep(delay);
      }
    }
  }

  private async forget(report: PendingReport): Promise<void> {
    try {
      await this.o.journal.delivered(report.taskId);
    } catch (error) {
      this.o.log("warn", "could not update the state directory", { error: message(error) });
    }
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Why a subscription ended, and whether the token was the reason (4401/4403 or an UNAUTHENTICATED error). */
export function classifyDisconnect(error: unknown): { auth: boolean; reason: string } {
  if (error === undefined || error === null) return { auth: false, reason: "closed" };
  if (Array.isArray(error)) {
    const codes = error.map((e: { extensions?: { code?: unknown } }) => (typeof e?.extensions?.code === "string" ? e.extensions.code : "UNKNOWN"));
    const messages = error.map((e: { message?: unknown }) => (typeof e?.message === "string" ? e.message : "")).filter(Boolean);
    return { auth: codes.some((c) => failureOfCode(c) === "auth"), reason: `subscription refused: ${messages.join("; ").slice(0, 200) || codes.join(", ")}` };
  }
  const e = error as { code?: unknown; reason?: unknown; message?: unknown; error?: { message?: unknown; code?: unknown } };
  if (typeof e.code === "number") {
    const reason = `closed with ${e.code}${typeof e.reason === "string" && e.reason ? ` ${e.reason}` : ""}`;
    return { auth: e.code === 4401 || e.code === 4403, reason };
  }
  const inner = e.error && typeof e.error === "object" ? e.error : undefined;
  const code = typeof inner?.code === "string" ? inner.code : undefined;
  const text = typeof e.message === "string" && e.message ? e.message : typeof inner?.message === "string" ? inner.message : "connection error";
  return { auth: false, reason: code && !text.includes(code) ? `${text} (${code})` : text };
}
