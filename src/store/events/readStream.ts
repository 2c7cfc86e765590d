import { sql } from "kysely";
import type { DomainEvent } from "../../domain/eventDefinition.ts";
import type { Tx } from "../db.ts";

/**
 * A stream as its decider folds it: its current version (0 when it has none), the events to fold
 * in order, and, where retention pruned its first events, the state they left (stream_snapshots),
 * to fold the remaining events onto. One query.
 */
export interface LoadedStream {
  version: number;
  events: DomainEvent[];
  snapshot?: { version: number; state: unknown };
}

export async function readStream(trx: Tx, tenantId: string, streamType: string, streamId: string): Promise<LoadedStream> {
  // The snapshot's version is below every remaining event's: pruned events are the stream's first.
  const { rows } = await sql<{ snapshot: boolean; stream_version: number; event_type: string | null; data: unknown }>`
    select true as snapshot, version as stream_version, null::text as event_type, state as data from stream_snapshots
     where tenant_id = ${tenantId} and stream_type = ${streamType} and stream_id = ${streamId}
    union all
    select false, stream_version, event_type, data from events
     where tenant_id = ${tenantId} and stream_type = ${streamType} and stream_id = ${streamId}
    order by stream_version`.execute(trx);
  const stream: LoadedStream = { version: rows.length ? rows[rows.length - 1]!.stream_version : 0, events: [] };
  for (const row of rows) {
    if (row.snapshot) stream.snapshot = { version: row.stream_version, state: row.data };
    else stream.events.push({ type: row.event_type!, data: row.data as Record<string, unknown> });
  }
  return stream;
}
