import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fingerprint } from "../store/events/hashing.ts";
import type { Clock } from "./clock.ts";
import type { Log } from "./jsonLog.ts";
import { writeSecretFile } from "./secretFile.ts";
import { fileFingerprint } from "./tokenWriterFile.ts";
import { EXIT_CODE, TokenSourceError, type IssuedToken, type TokenSource } from "./tokenWriterSource.ts";

// The loop of `keyplane github-token`: one write and exit (an initContainer), or keep the file fresh
// (--watch, a sidecar) with a /healthz that tells whether the token on disk is good for a while yet.
// Time is injected so the schedule can be tested without waiting minutes.

export interface Timing {
  /** Refresh this long before expiry; unset = a random lead between 5 and 10 minutes, drawn per token. */
  refreshBeforeMs?: number;
  /** Never ask again sooner than this after a success (a token already inside the lead window). */
  minIntervalMs: number;
  /** First retry after a failure; doubles per consecutive failure, ±20 % jitter. */
  retryBaseMs: number;
  /** Longest wait between retries when the service is unreachable. */
  retryMaxMs: number;
  /** Longest wait between retries when the request was refused (an operator has to fix something). */
  refusedRetryMaxMs: number;
  /** Once-mode: a rate limit whose wait fits in this budget is waited out instead of failing. */
  onceRateLimitBudgetMs: number;
  /** Deadline of one request (resolving the installation and minting included). */
  requestTimeoutMs: number;
  /** /healthz answers 200 only while the token on disk has at least this long to live. */
  healthMinValidityMs: number;
}

export const DEFAULT_TIMING: Timing = {
  minIntervalMs: 30_000,
  retryBaseMs: 5_000,
  retryMaxMs: 60_000,
  refusedRetryMaxMs: 5 * 60_000,
  onceRateLimitBudgetMs: 30_000,
  requestTimeoutMs: 30_000,
  healthMinValidityMs: 5 * 60_000,
};

const MINUTE = 60_000;

/**
 * When to ask for the next token after one that expires at expiresAt: `lead` before expiry. A token
 * already inside that window (Keyplane reuses a cached token while it has over 5 minutes left) is
 * asked about again after minIntervalMs, but no later than when it stops being healthy, which is
 * when Keyplane stops reusing it; never sooner than 5 s (minIntervalMs if smaller) apart.
 */
export function nextRefreshAt(expiresAt: number, now: number, timing: Timing, random: () => number): number {
  const lead = timing.refreshBeforeMs ?? 5 * MINUTE + random() * 5 * MINUTE;
  const due = expiresAt - lead;
  if (due >= now + timing.minIntervalMs) return due;
  const floor = now + Math.min(5_000, timing.minIntervalMs);
  return Math.max(floor, Math.min(Math.max(due, now + timing.minIntervalMs), expiresAt - timing.healthMinValidityMs));
}

/** How long to wait after the n-th consecutive failure (n ≥ 1). */
export function retryDelay(failures: number, error: TokenSourceError, timing: Timing, random: () => number): number {
  const cap = error.kind === "refused" || error.kind === "config" ? timing.refusedRetryMaxMs : timing.retryMaxMs;
  const backoff = Math.min(cap, timing.retryBaseMs * 2 ** Math.min(30, failures - 1)) * (0.8 + 0.4 * random());
  return error.kind === "rate_limited" && error.retryAfterMs !== undefined ? Math.max(error.retryAfterMs, backoff) : backoff;
}

/** What was last written to the output file. */
export interface WrittenToken {
  expiresAt: Date;
  /** The fingerprint the source gave (Keyplane's, in brokered mode), for logs. */
  fingerprint: string;
  /** sha256 of exactly what the file holds, to notice a file replaced or removed behind our back. */
  fileFingerprint: string;
  installationId: string | number | null;
}

export interface WriterState {
  current?: WrittenToken;
  /** A write in progress: between the rename and `current` being set, the file on disk is this one. */
  writing?: WrittenToken;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export interface HealthVerdict {
  ok: boolean;
  body: { status: "ok" | "no_token" | "expiring" | "expired" | "file_changed"; expiresAt?: string; validForSeconds?: number };
}

export async function health(output: string, state: WriterState, clock: Pick<Clock, "now">, timing: Pick<Timing, "healthMinValidityMs">): Promise<HealthVerdict> {
  const onDisk = await fileFingerprint(output);
  const current = state.writing && onDisk === state.writing.fileFingerprint ? state.writing : state.current;
  if (!current) return { ok: false, body: { status: "no_token" } };
  const expiresAt = current.expiresAt.toISOString();
  const validForSeconds = Math.floor((current.expiresAt.getTime() - clock.now()) / 1000);
  if (onDisk !== current.fileFingerprint) return { ok: false, body: { status: "file_changed", expiresAt } };
  if (validForSeconds <= 0) return { ok: false, body: { status: "expired", expiresAt, validForSeconds: 0 } };
  if (validForSeconds * 1000 < timing.healthMinValidityMs) return { ok: false, body: { status: "expiring", expiresAt, validForSeconds } };
  return { ok: true, body: { status: "ok", expiresAt, validForSeconds } };
}

/** GET /healthz: 200 while the token on disk has healthMinValidityMs left, else 503. Anything else 404. */
export async function startHealthServer(options: {
  port: number;
  host?: string;
  output: string;
  state: WriterState;
  clock: Pick<Clock, "now">;
  timing: Pick<Timing, "healthMinValidityMs">;
}): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/healthz" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ status: "not_found" }));
      return;
    }
    health(options.output, options.state, options.clock, options.timing).then(
      (verdict) => {
        res.writeHead(verdict.ok ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : JSON.stringify(verdict.body));
      },
      () => res.writeHead(503).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface RunOptions {
  source: TokenSource;
  output: string;
  state: WriterState;
  log: Log;
  clock: Clock;
  timing: Timing;
  /** Aborted by SIGTERM/SIGINT (or a test): the loop ends and the command exits 0. */
  signal: AbortSignal;
}

/** Asks once, writes if the token is not already the one on disk, records it. */
async function issueAndWrite(options: RunOptions): Promise<IssuedToken> {
  const { source, output, state, log, timing, signal } = options;
  const issued = await source.issue(Date.now() + timing.requestTimeoutMs, signal);
  const fileFp = fingerprint(issued.token);
  const fields = {
    installationId: issued.installationId ?? undefined,
    expiresAt: issued.expiresAt.toISOString(),
    fingerprint: issued.fingerprint,
    cached: issued.cached,
    repositories: issued.repositories ?? undefined,
    permissions: issued.permissions ?? undefined,
  };
  if (state.current?.fileFingerprint === fileFp && (await fileFingerprint(output)) === fileFp) {
    log("info", "token unchanged", fields);
  } else {
    state.writing = { expiresAt: issued.expiresAt, fingerprint: issued.fingerprint, fileFingerprint: fileFp, installationId: issued.installationId };
    try {
      await writeSecretFile(output, issued.token);
    } catch (error) {
      state.writing = undefined;
      // The file system, not GitHub or Keyplane: a configuration problem (2) in once-mode, retried in watch mode.
      throw new TokenSourceError("config", `cannot write ${output} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, "write_failed");
    }
    log("info", "token written", { ...fields, output });
  }
  state.current = { expiresAt: issued.expiresAt, fingerprint: issued.fingerprint, fileFingerprint: fileFp, installationId: issued.installationId };
  state.writing = undefined;
  return issued;
}

const asSourceError = (error: unknown) =>
  error instanceof TokenSourceError ? error : new TokenSourceError("unavailable", error instanceof Error ? error.message : String(error), "error");

/** One token, then exit: 0 written, 2 configuration, 3 refused (or rate limited beyond the budget), 4 unavailable. */
export async function runOnce(options: RunOptions): Promise<number> {
  const { log, clock, timing, signal } = options;
  const started = clock.now();
  for (;;) {
    try {
      await issueAndWrite(options);
      return 0;
    } catch (caught) {
      const error = asSourceError(caught);
      const wait = error.retryAfterMs ?? 0;
      if (error.kind === "rate_limited" && clock.now() + wait - started <= timing.onceRateLimitBudgetMs && !signal.aborted) {
        log("warn", "rate limited; waiting", { code: error.code, retryInSeconds: Math.ceil(wait / 1000) });
        await clock.sleep(wait, signal);
        continue;
      }
      log("error", error.message, { kind: error.kind, code: error.code });
      return EXIT_CODE[error.kind];
    }
  }
}

/**
 * Keeps the file fresh until signal aborts (exit 0). A failure never removes the file: the last good
 * token stays there, and the request is retried with backoff (a rate limit's retryAfter is honoured)
 * until it succeeds. Only a configuration problem on the very first request ends the loop (exit 2).
 */
export async function runWatch(options: RunOptions): Promise<number> {
  const { state, log, clock, timing, signal } = options;
  let failures = 0;
  let first = true;
  while (!signal.aborted) {
    let wakeAt: number;
    try {
      const issued = await issueAndWrite(options);
      failures = 0;
      first = false;
      wakeAt = nextRefreshAt(issued.expiresAt.getTime(), clock.now(), timing, clock.random);
      log("debug", "next refresh scheduled", { refreshAt: new Date(wakeAt).toISOString() });
    } catch (caught) {
      if (signal.aborted) break;
      const error = asSourceError(caught);
      if (error.kind === "config" && first) {
        log("error", error.message, { kind: error.kind, code: error.code });
        return EXIT_CODE.config;
      }
      failures++;
      const delay = retryDelay(failures, error, timing, clock.random);
      const now = clock.now();
      const current = state.current;
      const validFor = current ? Math.floor((current.expiresAt.getTime() - now) / 1000) : undefined;
      log(current && validFor! > 0 ? "warn" : "error", `token refresh failed: ${error.message}`, {
        kind: error.kind,
        code: error.code,
        failures,
        retryInSeconds: Math.round(delay / 100) / 10,
        expiresAt: current?.expiresAt.toISOString(),
        fingerprint: current?.fingerprint,
        validForSeconds: validFor !== undefined ? Math.max(0, validFor) : undefined,
      });
      wakeAt = now + delay;
    }
    await sleepUntil(wakeAt, clock, signal);
  }
  log("info", "stopped");
  return 0;
}

/** Sleeps in slices of at most a minute, re-reading the clock, so a suspended machine or a clock jump does not oversleep. */
async function sleepUntil(at: number, clock: Clock, signal: AbortSignal): Promise<void> {
  for (let left = at - clock.now(); left > 0 && !signal.aborted; left = at - clock.now()) {
    await clock.sleep(Math.min(left, MINUTE), signal);
  }
}
