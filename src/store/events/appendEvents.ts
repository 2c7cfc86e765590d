import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { validateEventData } from "../../domain/eventRegistry.ts";
import { ConflictError } from "../../errors.ts";
import { countAppended } from "../../metrics.ts";
import type { Tx } from "../db.ts";
import { applyProjections } from "../projections/applyProjections.ts";
import { contentHash, genesisHash } from "./hashing.ts";
import type { AppendRequest, StoredEvent } from "./types.ts";

interface AppendedRow {
  o_seq: number | null;
  o_position: number | null;
  o_recorded_at: Date | string | null;
  o_chain_hash: string | null;
  o_version: number;
}

/**
 * The one write path: appends events to a stream in the tenant's hash-chained log and projects them
 * into the read tables, all inside the caller's transaction (opened with withTenant).
 *
 * keyplane_append_events (migrations/0004) locks the tenant head row first, so appends of one tenant
 * are serialized: sequences are dense, become visible in commit order, and the stream-version check
 * cannot race. One round trip for the whole append; content hashes are computed here.
 */
export async function appendEvents(trx: Tx, request: AppendRequest): Promise<StoredEvent[]> {
  const { tenantId, streamType, streamId, expectedVersion, metadata } = request;
  if (request.events.length === 0) return [];
  // Data and metadata as the database will hand them back (a JSON round trip: no undefined members,
  // no Dates), so the hashes cover exactly what a reader of the log sees.
  const asStored = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
  const validated = request.events.map((e) => {
    const { schemaVersion, data } = validateEventData(e.type, e.data);
    return { type: e.type, schemaVersion, data: asStored(data) };
  });
  const storedMetadata = asStored(metadata);
  const occurredAt = new Date().toISOString();

  // "any" appends after whatever the stream holds: the version is read first, and read again once if
  // another append got in between (after the first attempt this transaction holds the tenant lock).
  let base = expectedVersion === "any" ? await currentVersion(trx, request) : expectedVersion;
  for (let attempt = 0; ; attempt++) {
    if (!Number.isInteger(base) || base < 0) throw conflict(request, await currentVersion(trx, request));
    const events = validated.map((event, i) => {
      const eventId = randomUUID();
      const content = contentHash({ eventId, tenantId, streamType, streamId, streamVersion: base + i + 1, type: event.type, schemaVersion: event.schemaVersion, data: event.data, metadata: storedMetadata, occurredAt });
      return { event_id: eventId, event_type: event.type, schema_version: event.schemaVersion, data: event.data, content_hash: content };
    });
    const { rows } = await sql<AppendedRow>`
      select * from keyplane_append_events(${tenantId}, ${streamType}, ${streamId}, ${base}::int, ${genesisHash(tenantId)},
        ${occurredAt}::timestamptz, ${JSON.stringify(storedMetadata)}::jsonb, ${JSON.stringify(events)}::jsonb)`.execute(trx);

    if (rows[0]!.o_seq === null) {
      const found = rows[0]!.o_version;
      if (expectedVersion === "any" && attempt === 0) {
        base = found;
        continue;
      }
      throw conflict(request, found);
    }

    const stored: StoredEvent[] = rows.map((row, i) => ({
      tenantId,
      sequence: Number(row.o_seq),
      globalPosition: Number(row.o_position),
      streamType,
      streamId,
      streamVersion: row.o_version,
      eventId: events[i]!.event_id,
      type: events[i]!.event_type,
      schemaVersion: events[i]!.schema_version,
      data: events[i]!.data,
      metadata: storedMetadata,
      occurredAt,
      recordedAt: new Date(row.o_recorded_at!).toISOString(),
      contentHash: events[i]!.content_hash,
      chainHash: row.o_chain_hash!,
    }));
    await applyProjections(trx, stored);
    countAppended(stored);
    return stored;
  }
}

function conflict({ streamType, streamId, expectedVersion }: AppendRequest, actualVersion: number): ConflictError {
  return new ConflictError(`${streamType} ${streamId} was changed concurrently (expected version ${expectedVersion}, found ${actualVersion})`, {
    expectedVersion,
    actualVersion,
  });
}

async function currentVersion(trx: Tx, { tenantId, streamType, streamId }: AppendRequest): Promise<number> {
  const { rows } = await sql<{ version: number }>`
    select coalesce(max(stream_version), 0)::int as version from events
    where tenant_id = ${tenantId} and stream_type = ${streamType} and stream_id = ${streamId}`.execute(trx);
  return rows[0]!.version;
}
