import type { TokenSourceError } from "./tokenSource.ts";

// When the token writer asks for its next token, and how long it waits after a failure: pure, so the
// schedule is tested without a clock.

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
