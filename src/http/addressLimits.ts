import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../logger.ts";
import { rateLimitedError, rateLimitHeaders, type AddressPolicy, type RateLimits } from "../limits/rateLimits.ts";
import { sendJson } from "./httpErrors.ts";
import { requestMetaOf } from "./requestMeta.ts";

/** The plain-HTTP endpoints counted per source address, by path. */
export function addressPolicyOf(path: string): AddressPolicy | undefined {
  if (path.startsWith("/oauth/")) return "oauth";
  if (path.startsWith("/webhooks/")) return "webhooks";
  return undefined;
}

/**
 * Counts a request of a public plain-HTTP endpoint against its address: the RateLimit headers on the
 * answer, and over the limit a 429 (Retry-After, JSON error RATE_LIMITED). True when it may go on.
 * A failure of the limiter itself lets the request through (its store has an insurance limiter).
 */
export async function admitAddress(limits: RateLimits, logger: Logger, policy: AddressPolicy, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  let decision;
  try {
    decision = await limits.checkAddress(policy, requestMetaOf(null, req));
  } catch (error) {
    logger.error({ err: error, policy }, "rate limit check failed; request let through");
    return true;
  }
  const headers = rateLimitHeaders(decision.checks);
  if (decision.refused) {
    const error = rateLimitedError(decision.refused);
    sendJson(res, 429, { error: { code: error.code, message: error.message, ...error.extensions } }, headers);
    return false;
  }
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  return true;
}
