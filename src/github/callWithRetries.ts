import { setTimeout as delay } from "node:timers/promises";
import { DomainError, RateLimitedError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { isRecord, messageCode, str } from "../providers/http.ts";
import type { AppRequestResponse } from "./appRequester.ts";
import { GitHubAppError, tag } from "./githubAppErrors.ts";
import { isRateLimit, rateLimitWait } from "./rateLimit.ts";

// One GitHub App call with Keyplane's retry policy: 5xx and network errors are retried (5 attempts,
// exponential backoff from 500 ms, capped at 5 s, with jitter); 429 and secondary-rate-limit 403 wait
// for Retry-After / X-RateLimit-Reset (up to three times) when that fits before the call's deadline,
// else RATE_LIMITED with retryAfter; any other answer fails at once through the caller's `refuse`.
//
// Why this is hand-written rather than @octokit/plugin-retry and @octokit/plugin-throttling on an
// @octokit/core instance (read in plugin-retry 8.1.1 and plugin-throttling 11.0.5; each point is
// behaviour test/integration/githubAppClient.test.ts holds):
// - Waits: both plugins wait on Bottleneck's own timers (a "failed" listener returns
//   `retryAfter * retryAfterBaseValue` ms). A wait can neither go through an injected sleep (the
//   tests', or any clock the caller controls) nor be cut short by the call's deadline.
// - Deadlines: neither plugin knows one. Here a retry or a rate-limit wait that would end past the
//   deadline is not started: the caller gets PROVIDER_ERROR or RATE_LIMITED (with retryAfter) at once.
// - Backoff: plugin-retry waits (retryCount + 1)^2 x base (1 s, 4 s, 9 s, ...) with neither jitter nor
//   cap; here base x 2^(n-1), capped, times 0.5-1 jitter so concurrent callers do not retry in step.
// - Rate limits: plugin-throttling waits out a 403/429 only when the message says "secondary rate" or
//   X-RateLimit-Remaining is 0, so a 429 with only Retry-After fails instead; it reads Retry-After as
//   seconds only (an HTTP date becomes 60 s) and X-RateLimit-Reset against the local clock. Here both
//   are read on GitHub's clock (its Date header), the clock auth-app already corrects the JWT by.
// - Throttling: its Bottleneck groups are process-wide by default: every POST .../access_tokens of every app
//   queues behind the previous one (maxConcurrent 1) and writes (revocations, uninstalls) are spaced
//   1 s apart. Keyplane mints for many tenants at once and must not serialize them.
// With their timers, policies and queues switched off, what the plugins would still do is call `send`
// again: the loop below. So neither is a dependency.

export interface RetryPolicy {
  /** Attempts on 5xx and network errors, the first included (default 5). */
  attempts?: number;
  /** First backoff (default 500 ms), doubled per failure up to capMs (default 5 s), then jittered. */
  baseMs?: number;
  capMs?: number;
}

/** A failed attempt as the policy sees it. */
export interface Failure {
  status?: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  message?: string;
  /** timeout | network_error for failures without an answer. */
  transport?: "timeout" | "network_error";
}

export interface CallContext {
  /** The route template, for messages and logs. */
  route: string;
  /** Epoch ms after which no retry or wait starts. */
  deadline: number;
  /** Turns a final (non-retried) HTTP failure into Keyplane's error. */
  refuse(failure: Failure & { status: number }, code: string): Error;
}

export interface CallerOptions {
  /** The app's name as it is now, for errors and logs. */
  app: () => string;
  logger: Logger;
  /** Waits between attempts (backoff, Retry-After). Tests pass one that records and returns at once. */
  sleep?: (ms: number) => Promise<void>;
  retry?: RetryPolicy;
}

export type Caller = (context: CallContext, send: () => Promise<AppRequestResponse>) => Promise<AppRequestResponse>;

export function createCaller(options: CallerOptions): Caller {
  const { logger } = options;
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const attempts = options.retry?.attempts ?? 5;
  const baseMs = options.retry?.baseMs ?? 500;
  const capMs = options.retry?.capMs ?? 5_000;

  return async function call(context, send) {
    const app = options.app();
    let failures = 0;
    let waits = 0;
    for (;;) {
      let failure: Failure | undefined;
      try {
        return await send();
      } catch (error) {
        if (error instanceof DomainError) throw error;
        failure = failureOf(error);
        if (!failure) {
          // Not an HTTP answer nor a network failure: the JWT could not be made (the key refused to sign).
          logger.error(
            { app, route: context.route, error: error instanceof Error ? error.name : "error" },
            `GitHub App ${app}: the app JWT could not be signed`,
          );
          throw new GitHubAppError(
            app,
            "app_authentication_failed",
            "invalid",
            undefined,
            `GitHub App ${app}: the app JWT could not be signed with its private key`,
          );
        }
      }
      const status = failure.status;
      const code = status === undefined ? failure.transport! : messageCode(failure.message, `http_${status}`);
      if (status === undefined || status >= 500) {
        failures++;
        const wait = Math.min(capMs, baseMs * 2 ** (failures - 1)) * (0.5 + Math.random() * 0.5);
        if (failures >= attempts || Date.now() + wait > context.deadline) {
          const what = status === undefined ? (code === "timeout" ? "timed out" : "could not be reached") : `failed (HTTP ${status})`;
          throw new GitHubAppError(
            app,
            code,
            "transient",
            status,
            `GitHub App ${app}: GitHub ${what} on ${context.route}, ${failures} attempt${failures === 1 ? "" : "s"}`,
          );
        }
        logger.warn(
          { app, route: context.route, status, providerCode: code, attempt: failures, waitMs: Math.round(wait) },
          `GitHub App ${app}: GitHub failed; retrying`,
        );
        await sleep(wait);
        continue;
      }
      if (status === 429 || (status === 403 && isRateLimit(failure.headers["x-ratelimit-remaining"], failure.headers["retry-after"], failure.message ?? ""))) {
        const wait = rateLimitWait(failure.headers);
        if (waits < 3 && Date.now() + wait <= context.deadline) {
          waits++;
          logger.warn({ app, route: context.route, status, waitMs: wait }, `GitHub App ${app}: rate limited by GitHub; waiting`);
          await sleep(wait);
          continue;
        }
        const retryAfter = Math.max(1, Math.ceil(wait / 1000));
        logger.warn({ app, route: context.route, status, retryAfter }, `GitHub App ${app}: rate limited by GitHub beyond the request's deadline`);
        throw tag(
          new RateLimitedError(`GitHub App ${app}: GitHub's rate limit is exhausted (${context.route}); retry after ${retryAfter} s`, retryAfter),
          app,
          { status, providerCode: code, retryAfter },
        );
      }
      throw context.refuse({ ...failure, status }, code);
    }
  };
}

/** An error from @octokit/request as a Failure, or undefined when it is neither an answer nor a transport failure. */
function failureOf(error: unknown): Failure | undefined {
  if (!isRecord(error)) return undefined;
  const response = isRecord(error.response) ? error.response : undefined;
  if (response && typeof response.status === "number") {
    const headers: Record<string, string> = {};
    if (isRecord(response.headers)) for (const [k, v] of Object.entries(response.headers)) if (v !== undefined) headers[k.toLowerCase()] = String(v);
    const data = isRecord(response.data) ? response.data : {};
    return { status: response.status, headers, message: str(data.message) };
  }
  // @octokit/request: a failed fetch is status 500 without a response; an abort is the AbortError itself.
  if (typeof error.status === "number" || (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError"))) {
    const cause = error.cause instanceof Error ? error.cause.name : error instanceof Error ? error.name : "";
    return { headers: {}, transport: cause === "TimeoutError" || cause === "AbortError" ? "timeout" : "network_error" };
  }
  return undefined;
}
