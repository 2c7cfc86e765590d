import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// A tenant's log streams: where its events are delivered (an HTTPS webhook, Splunk's HTTP Event
// Collector, Datadog Logs). The destination's secrets and full URL never enter an event: the
// destination is shown as scheme://host/path, the secret as a fingerprint.

export const logStreamKindSchema = z.enum(["webhook", "splunk", "datadog"]);
export type LogStreamKind = z.infer<typeof logStreamKindSchema>;

export const logStreamHealthSchema = z.enum(["pending", "healthy", "degraded", "error"]);
export type LogStreamHealth = z.infer<typeof logStreamHealthSchema>;

/** Options of the destination that are not secret (Splunk's index, Datadog's service…). */
export const logStreamSettingsSchema = z.object({
  index: z.string().optional(),
  source: z.string().optional(),
  sourcetype: z.string().optional(),
  site: z.string().optional(),
  service: z.string().optional(),
  ddsource: z.string().optional(),
  ddtags: z.string().optional(),
});
export type LogStreamSettings = z.infer<typeof logStreamSettingsSchema>;

export const logStreamFilterSchema = z.object({
  /** Only these event types; none: every type. */
  types: z.array(z.string()).optional(),
  /** Only security events (auth.failed, access.denied), within `types` if given. */
  securityOnly: z.boolean(),
});
export type LogStreamFilter = z.infer<typeof logStreamFilterSchema>;

const destinationFields = {
  name: z.string(),
  /** scheme://host[:port]/path: never the query string or credentials. */
  destination: z.string(),
  settings: logStreamSettingsSchema,
  filter: logStreamFilterSchema,
  /** SHA-256 prefix of the destination's secret (webhook secret, Splunk token, Datadog API key). */
  secretFingerprint: z.string(),
};

export const LogStreamCreated = defineEvent("log_stream.created", 1, z.object({ logStreamId: z.string(), kind: logStreamKindSchema, ...destinationFields }));
export const LogStreamUpdated = defineEvent("log_stream.updated", 1, z.object({ logStreamId: z.string(), ...destinationFields, changed: z.array(z.string()) }));
/** A new webhook signing secret; the previous one stays valid until `previousValidUntil` (both sign). */
export const LogStreamSecretRotated = defineEvent(
  "log_stream.secret_rotated",
  1,
  z.object({ logStreamId: z.string(), secretFingerprint: z.string(), previousFingerprint: z.string(), previousValidUntil: z.string() }),
);
export const LogStreamPaused = defineEvent("log_stream.paused", 1, z.object({ logStreamId: z.string() }));
export const LogStreamResumed = defineEvent("log_stream.resumed", 1, z.object({ logStreamId: z.string() }));
export const LogStreamDeleted = defineEvent("log_stream.deleted", 1, z.object({ logStreamId: z.string() }));
/** Redeliver from `fromSequence` on (at least once: the receiver deduplicates by event id). */
export const LogStreamReplayed = defineEvent("log_stream.replayed", 1, z.object({ logStreamId: z.string(), fromSequence: z.number().int().positive() }));
/** The deliverer saw the stream's health change; `error` is the receiver's answer, without secrets. */
export const LogStreamHealthChanged = defineEvent(
  "log_stream.health_changed",
  1,
  z.object({
    logStreamId: z.string(),
    from: logStreamHealthSchema,
    to: logStreamHealthSchema,
    error: z.string().optional(),
    deliveredSequence: z.number().int().nonnegative(),
  }),
);

export const logStreamEvents = [
  LogStreamCreated,
  LogStreamUpdated,
  LogStreamSecretRotated,
  LogStreamPaused,
  LogStreamResumed,
  LogStreamDeleted,
  LogStreamReplayed,
  LogStreamHealthChanged,
] as const;
export type LogStreamEvent = EventOf<(typeof logStreamEvents)[number]>;
