// How GitHub says "slow down", read the same way by the requester's metrics and the client's waits:
// a 429, or a 403 that is a rate limit (primary: X-RateLimit-Remaining 0; secondary: Retry-After or
// "rate limit" in the message) rather than a refusal.

/** Whether a 403 answer is a rate limit (a wait), not a refusal. */
export function isRateLimit(remaining: string | undefined, retryAfter: string | undefined, message: string): boolean {
  return remaining === "0" || retryAfter !== undefined || /rate limit/i.test(message);
}

/**
 * How long GitHub asks to wait, in ms: Retry-After (seconds or an HTTP date), else X-RateLimit-Reset
 * when the limit is exhausted, both read on GitHub's clock (its Date header), else a minute.
 * `headers` are lower-case.
 */
export function rateLimitWait(headers: Record<string, string>): number {
  const serverNow = Date.parse(headers.date ?? "") || Date.now();
  const retryAfter = headers["retry-after"];
  if (retryAfter !== undefined) {
    if (/^\d+$/.test(retryAfter.trim())) return Number(retryAfter.trim()) * 1000;
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - serverNow);
  }
  const reset = Number(headers["x-ratelimit-reset"]);
  if (headers["x-ratelimit-remaining"] === "0" && Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - serverNow) + 1000;
  // GitHub: without either header, wait at least a minute.
  return 60_000;
}
