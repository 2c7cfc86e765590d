import type { Selectable } from "kysely";
import type { EventsTable } from "../schema.ts";
import type { EventMetadata, StoredEvent } from "./types.ts";

export function rowToStoredEvent(row: Selectable<EventsTable>): StoredEvent {
  return {
    tenantId: row.tenant_id,
    sequence: Number(row.tenant_seq),
    streamType: row.stream_type,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    eventId: row.event_id,
    type: row.event_type,
    schemaVersion: row.schema_version,
    data: row.data,
    metadata: row.metadata as EventMetadata,
    occurredAt: new Date(row.occurred_at).toISOString(),
    recordedAt: new Date(row.recorded_at).toISOString(),
    contentHash: row.content_hash,
    chainHash: row.chain_hash,
  };
}
