import { z } from "zod";
import { defineEvent, isoTime, type EventOf } from "../eventDefinition.ts";

const sequence = z.number().int().nonnegative();

/**
 * An export of the tenant's log, recorded in that same log before the first line is sent: what was
 * asked for, the sequences it covers, and how many events it holds in full and as stubs.
 */
export const AuditExported = defineEvent(
  "audit.exported",
  1,
  z.object({
    exportId: z.string().uuid(),
    format: z.enum(["ndjson", "csv"]),
    via: z.enum(["http", "cli"]),
    fromSequence: sequence,
    toSequence: sequence,
    from: isoTime.optional(),
    to: isoTime.optional(),
    types: z.array(z.string()).optional(),
    anchor: z.object({ type: z.enum(["genesis", "checkpoint"]), sequence }),
    events: sequence,
    omitted: sequence,
  }),
);

export const auditEvents = [AuditExported] as const;
export type AuditEvent = EventOf<typeof AuditExported>;
