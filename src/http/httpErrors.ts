import type { ServerResponse } from "node:http";
import { BadInputError, DomainError, UnavailableError, type ErrorCode } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { isDatabaseUnavailable } from "../store/databaseErrors.ts";

// The plain-HTTP routes (OAuth, webhooks, audit export, probes) answer errors as JSON with the same
// stable codes as GraphQL: { "error": { "code", "message", ...extensions } }. One mapping for all of
// them, and for the server's last-resort guard.

export const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  TENANT_SUSPENDED: 403,
  SLOW_CONSUMER: 429,
  PROVIDER_ERROR: 502,
  UNAVAILABLE: 503,
  PRUNED: 410,
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}

/** What a caller may learn of an error: a DomainError as it is, the database's absence as UNAVAILABLE, anything else masked. */
export function publicErrorOf(error: unknown): DomainError | null {
  if (error instanceof DomainError) return error;
  if (error instanceof URIError) return new BadInputError("malformed percent-encoding in the URL");
  if (isDatabaseUnavailable(error)) return new UnavailableError();
  return null;
}

/**
 * Answers `error` on a plain-HTTP route. Once the body has started there is no status left to send:
 * the response is cut, so the client sees it incomplete rather than wrong.
 */
export function sendError(res: ServerResponse, error: unknown, logger: Logger): void {
  const known = publicErrorOf(error);
  if (!known || known.code === "UNAVAILABLE") logger.error({ err: error }, known ? "database unavailable" : "unexpected error");
  if (res.headersSent || res.writableEnded) {
    res.destroy();
    return;
  }
  if (!known) {
    sendJson(res, 500, { error: { code: "INTERNAL_SERVER_ERROR", message: "Unexpected error." } });
    return;
  }
  const headers: Record<string, string> = {};
  if (known.code === "UNAUTHENTICATED") headers["www-authenticate"] = "Bearer";
  const retryAfter = known.extensions.retryAfter;
  if (typeof retryAfter === "number") headers["retry-after"] = String(retryAfter);
  sendJson(res, HTTP_STATUS[known.code], { error: { code: known.code, message: known.message, ...known.extensions } }, headers);
}
