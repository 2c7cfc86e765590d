import type { Clock } from "../cli/clock.ts";
import type { Log } from "../cli/jsonLog.ts";
import { writeSecretFile } from "../cli/secretFile.ts";
import { fingerprint } from "../crypto/fingerprint.ts";
import type { WriterState } from "./health.ts";
import { fileFingerprint } from "./outputFile.ts";
import { nextRefreshAt, retryDelay, type Timing } from "./schedule.ts";
import { EXIT_CODE, TokenSourceError, type IssuedToken, type TokenSource } from "./tokenSource.ts";

// The loop of `keyplane github-token`: one write and exit (an initContainer), or keep the file fresh
// (--watch, a sidecar) while health.ts tells whether the token on disk is good for a while yet.
// Time is injected so the schedule can be tested without waiting minutes.

const MINUTE = 60_000;

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
