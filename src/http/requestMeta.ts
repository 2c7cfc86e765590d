import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { RequestMeta } from "../auth/actor.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Request id (the caller's X-Request-Id when well-formed), source ip and user agent. */
export function requestMetaOf(request: Request, req?: IncomingMessage): RequestMeta {
  const given = request.headers.get("x-request-id");
  const userAgent = request.headers.get("user-agent")?.slice(0, 256);
  const correlationId = request.headers.get("x-correlation-id");
  return {
    requestId: given && REQUEST_ID.test(given) ? given : randomUUID(),
    sourceIp: req?.socket?.remoteAddress,
    ...(userAgent ? { userAgent } : {}),
    ...(correlationId && REQUEST_ID.test(correlationId) ? { correlationId } : {}),
  };
}
