import { AsyncLocalStorage } from "node:async_hooks";
import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

// Secrets must never reach a log line, whatever object a caller hands to the logger.
const SECRET_KEYS = [
  "authorization",
  "cookie",
  "set-cookie",
  "token",
  "accessToken",
  "refreshToken",
  "idToken",
  "privateKey",
  "secret",
  "clientSecret",
  "webhookSecret",
  "password",
  "key",
  "signingKey",
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers["authorization"]',
  'req.headers["cookie"]',
  'headers["x-hub-signature-256"]',
];

/** Who and which request a log line belongs to; set per HTTP request, filled in once authenticated. */
export interface LogContext {
  requestId: string;
  /** W3C trace context: the caller's trace (traceparent) or a new one, and this request's span in it. */
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  tenantId?: string;
  actor?: string;
}

export const logContext = new AsyncLocalStorage<LogContext>();

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { service: "keyplane" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Every line written while serving a request carries its request id, tenant and actor.
      mixin: () => ({ ...logContext.getStore() }),
    },
    options.destination,
  );
}
