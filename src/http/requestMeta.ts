import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { RequestMeta } from "../auth/actor.ts";
import { logContext } from "../logger.ts";
import { clientAddressOf } from "./clientAddress.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's X-Request-Id when well-formed, else a new one. */
export function requestIdOf(given: string | null | undefined): string {
  return given && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Request id (as the HTTP layer chose it), source ip and user agent, from a Fetch Request or a Node request. */
export function requestMetaOf(request: Pick<Request, "headers"> | null, req?: IncomingMessage): RequestMeta {
  const header = (name: string): string | null => {
    if (request) return request.headers.get(name);
    const value = req?.headers[name];
    return typeof value === "string" ? value : null;
  };
  const userAgent = header("user-agent")?.slice(0, 256);
  const correlationId = header("x-correlation-id");
  return {
    requestId: logContext.getStore()?.requestId ?? requestIdOf(header("x-request-id")),
    // The client behind trusted proxies (TRUSTED_PROXIES), as the server resolved it.
    sourceIp: req ? clientAddressOf(req) : undefined,
    ...(userAgent ? { userAgent } : {}),
    ...(correlationId && REQUEST_ID.test(correlationId) ? { correlationId } : {}),
  };
}
