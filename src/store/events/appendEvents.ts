import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { validateEventData } from "../../domain/eventRegistry.ts";
import { ConflictError } from "../../errors.ts";
import { countAppended } from "../../metrics.ts";
import type { Tx } from "../db.ts";
import { announceAppend, CREDENTIAL_EVENTS } from "./announceAppends.ts";
import { applyProjections } from "../projections/applyProjections.ts";
import { contentHash, genesisHash } from "./hashing.ts";
import type { AppendRequest, StoredEvent } from "./types.ts";

/** What keyplane_append_events (migrations/0012) answers: a version conflict, or the rows it wrote. */
type AppendResult = { version: number } | { appended: Array<{ seq: number; recorded_at: string; chain_hash: string; version: number }>; notified: boolean };

/**
 * The one write path: appends events to a stream in the tenant's hash-chained log and projects them
 * into the read tables, all inside the caller's transaction (opened with withTenant).
 *
 * keyplane_append_events (migrations/0012) locks the tenant head row first, so appends of one tenant
 * are serialized: sequences are dense, become visible in commit order, and the stream-version check
 * cannot race. One round trip for the whole append (on Citus, delegated to the node holding the
 * tenant); content hashes are computed here. The live feed's hint (the tenant's new head) leaves with
 * the commit: sent by the function itself on PostgreSQL, by the transaction on Citus (announceAppends.ts).
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
    // The call alone in its SELECT: the form Citus delegates.
    const { rows } = await sql<{ result: AppendResult }>`
      select keyplane_append_events(${tenantId}, ${streamType}, ${streamId}, ${base}::int, ${genesisHash(tenantId)},
        ${occurredAt}::timestamptz, ${JSON.stringify(storedMetadata)}::jsonb, ${JSON.stringify(events)}::jsonb) as result`.execute(trx);
    const result = rows[0]!.result;

    if (!("appended" in result)) {
      const found = result.version;
      if (expectedVersion === "any" && attempt === 0) {
        base = found;
        continue;
      }
      throw conflict(request, found);
    }

    const stored: StoredEvent[] = result.appended.map((row, i) => ({
      tenantId,
      sequence: row.seq,
      streamType,
      streamId,
      streamVersion: row.version,
      eventId: events[i]!.event_id,
      type: events[i]!.event_type,
      schemaVersion: events[i]!.schema_version,
      data: events[i]!.data,
      metadata: storedMetadata,
      occurredAt,
      recordedAt: new Date(row.recorded_at).toISOString(),
      contentHash: events[i]!.content_hash,
      chainHash: row.chain_hash,
    }));
    announceAppend(trx, tenantId, stored[stored.length - 1]!.sequence, { notified: result.notified, credentials: stored.some((e) => CREDENTIAL_EVENTS.has(e.type)) });
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
