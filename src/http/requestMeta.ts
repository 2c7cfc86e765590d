import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { RequestMeta } from "../auth/actor.ts";
import { logContext } from "../logger.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's X-Request-Id when well-formed, else a new one. */
export function requestIdOf(given: string | null | undefined): string {
  return given && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Request id (as the HTTP layer chose it), source ip and user agent. */
export function requestMetaOf(request: Request, req?: IncomingMessage): RequestMeta {
  const userAgent = request.headers.get("user-agent")?.slice(0, 256);
  const correlationId = request.headers.get("x-correlation-id");
  return {
    requestId: logContext.getStore()?.requestId ?? requestIdOf(request.headers.get("x-request-id")),
    sourceIp: req?.socket?.remoteAddress,
    ...(userAgent ? { userAgent } : {}),
    ...(correlationId && REQUEST_ID.test(correlationId) ? { correlationId } : {}),
  };
}
