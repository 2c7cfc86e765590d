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
    via: z.enum(["http", "cli", "archive"]),
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

/**
 * Retention removed a prefix of the tenant's log (sequences from..to, all older than its period),
 * ending at a signed checkpoint: the log now starts right after that anchor. `archive` names the
 * export file written (and fsynced) before, and its SHA-256, when archives are kept.
 */
export const AuditPruned = defineEvent(
  "audit.pruned",
  1,
  z.object({
    fromSequence: sequence,
    toSequence: sequence,
    events: sequence,
    anchor: z.object({ sequence, chainHash: z.string() }),
    lastOccurredAt: isoTime,
    retentionDays: z.number().int().positive(),
    archive: z.object({ file: z.string(), sha256: z.string() }).nullable(),
  }),
);

export const auditEvents = [AuditExported, AuditPruned] as const;
export type AuditEvent = EventOf<(typeof auditEvents)[number]>;
