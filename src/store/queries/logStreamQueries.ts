import { sql } from "kysely";
import type { LogStreamFilter, LogStreamHealth, LogStreamKind, LogStreamSettings } from "../../domain/logStream/events.ts";
import type { Tx } from "../db.ts";

/** A log stream as an admin sees it: the read model, its delivery progress and its lag. Never a secret. */
export interface LogStreamRow {
  tenantId: string;
  logStreamId: string;
  name: string;
  kind: LogStreamKind;
  destination: string;
  settings: LogStreamSettings;
  filter: LogStreamFilter;
  secretFingerprint: string;
  state: "active" | "paused" | "deleted";
  health: LogStreamHealth;
  /** The receiver's last answer that changed the health, or the last failed attempt's. */
  lastError: string | null;
  deliveredSequence: number;
  headSequence: number;
  /** When the oldest event not yet delivered occurred (null: caught up). */
  oldestUndeliveredAt: Date | null;
  attempts: number;
  lastSuccessAt: Date | null;
  lastAttemptAt: Date | null;
  nextAttemptAt: Date | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
}

interface Raw {
  tenant_id: string;
  log_stream_id: string;
  name: string;
  kind: LogStreamKind;
  destination: string;
  settings: LogStreamSettings;
  filter: LogStreamFilter;
  secret_fingerprint: string;
  state: LogStreamRow["state"];
  health: LogStreamHealth;
  last_error: string | null;
  delivery_error: string | null;
  delivered_seq: number | string | null;
  head_seq: number | string | null;
  oldest_undelivered_at: Date | string | null;
  attempts: number | null;
  last_success_at: Date | string | null;
  last_attempt_at: Date | string | null;
  next_attempt_at: Date | string | null;
  created_by: string;
  created_at: Date | string;
  updated_at: Date | string;
}

const date = (v: Date | string | null) => (v === null ? null : new Date(v));

function toRow(r: Raw): LogStreamRow {
  return {
    tenantId: r.tenant_id,
    logStreamId: r.log_stream_id,
    name: r.name,
    kind: r.kind,
    destination: r.destination,
    settings: r.settings,
    filter: r.filter,
    secretFingerprint: r.secret_fingerprint,
    state: r.state,
    health: r.health,
    lastError: r.health === "healthy" || r.health === "pending" ? (r.delivery_error ?? null) : (r.last_error ?? r.delivery_error),
    deliveredSequence: Number(r.delivered_seq ?? 0),
    headSequence: Number(r.head_seq ?? 0),
    oldestUndeliveredAt: date(r.oldest_undelivered_at),
    attempts: r.attempts ?? 0,
    lastSuccessAt: date(r.last_success_at),
    lastAttemptAt: date(r.last_attempt_at),
    nextAttemptAt: date(r.next_attempt_at),
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}

/** The tenant's log streams (all but deleted ones, or only `logStreamId`), oldest first, in one statement. */
export async function readLogStreams(trx: Tx, tenantId: string, logStreamId?: string): Promise<LogStreamRow[]> {
  const { rows } = await sql<Raw>`
    select s.tenant_id, s.log_stream_id, s.name, s.kind, s.destination, s.settings, s.filter, s.secret_fingerprint,
           s.state, s.health, s.last_error, s.created_by, s.created_at, s.updated_at,
           d.delivered_seq, d.attempts, d.last_success_at, d.last_attempt_at, d.next_attempt_at, d.last_error as delivery_error,
           h.last_seq as head_seq,
           (select e.occurred_at from events e where e.tenant_id = s.tenant_id and e.tenant_seq = d.delivered_seq + 1) as oldest_undelivered_at
    from log_streams s
    left join log_stream_deliveries d on d.tenant_id = s.tenant_id and d.log_stream_id = s.log_stream_id
    left join tenant_heads h on h.tenant_id = s.tenant_id
    where s.tenant_id = ${tenantId} and s.state <> 'deleted' and (${logStreamId ?? null}::text is null or s.log_stream_id = ${logStreamId ?? null})
    order by s.created_at, s.log_stream_id`.execute(trx);
  return rows.map(toRow);
}

/** Streams of the tenant that count against its limit (not deleted). */
export async function countLogStreams(trx: Tx, tenantId: string): Promise<number> {
  const row = await trx
    .selectFrom("log_streams")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("tenant_id", "=", tenantId)
    .where("state", "<>", "deleted")
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
