import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { validateEventData } from "../../domain/eventRegistry.ts";
import { ConflictError } from "../../errors.ts";
import type { Tx } from "../db.ts";
import { applyProjections } from "../projections/applyProjections.ts";
import { chainHash, contentHash, genesisHash } from "./hashing.ts";
import type { AppendRequest, StoredEvent } from "./types.ts";

/**
 * The one write path: appends events to a stream in the tenant's hash-chained log and projects them
 * into the read tables, all inside the caller's transaction (opened with withTenant).
 *
 * The tenant head row is locked first, so appends of one tenant are serialized: sequences are dense,
 * become visible in commit order, and the stream-version check cannot race.
 *
 * Round trips (each costs more than everything computed here): one to lock the head, one that checks
 * the stream version, inserts the events and moves the head, then the projections. The version check
 * runs inside the insert statement: that statement starts after the lock is held, so its snapshot
 * sees every append of this tenant committed before ours (a check folded into the locking statement
 * would not: after waiting for the lock, READ COMMITTED keeps the snapshot taken before the wait).
 */
export async function appendEvents(trx: Tx, request: AppendRequest): Promise<StoredEvent[]> {
  const { tenantId, streamType, streamId, expectedVersion, metadata } = request;
  if (request.events.length === 0) return [];
  const validated = request.events.map((e) => ({ type: e.type, ...validateEventData(e.type, e.data) }));

  const head = await lockTenantHead(trx, tenantId);

  // A numeric expected version is checked by the insert below; "any" appends after what is there now.
  if (expectedVersion !== "any" && !(Number.isInteger(expectedVersion) && expectedVersion >= 0)) {
    throw await conflict(trx, request); // no stream has such a version
  }
  const baseVersion = expectedVersion === "any" ? await streamVersion(trx, tenantId, streamType, streamId) : expectedVersion;

  const occurredAt = new Date().toISOString();
  const metadataJson = JSON.stringify(metadata);
  let previous = head.lastChainHash;
  const rows = validated.map((event, i) => {
    const sequence = head.lastSeq + i + 1;
    const eventId = randomUUID();
    const version = baseVersion + i + 1;
    const content = contentHash({ eventId, tenantId, streamType, streamId, streamVersion: version, type: event.type, schemaVersion: event.schemaVersion, data: event.data, metadata, occurredAt });
    previous = chainHash(previous, sequence, content);
    return { sequence, eventId, version, type: event.type, schemaVersion: event.schemaVersion, dataJson: JSON.stringify(event.data), content, chain: previous };
  });
  const last = rows[rows.length - 1]!;

  // Casts on every value: the VALUES list sits under a SELECT, where no column type reaches it.
  const values = sql.join(
    rows.map(
      (r) =>
        sql`(${r.sequence}::bigint, ${r.version}::int, ${r.eventId}::uuid, ${r.type}::text, ${r.schemaVersion}::int, ${r.dataJson}::jsonb, ${r.content}::text, ${r.chain}::text)`,
    ),
  );
  const { rows: inserted } = await sql<{ tenant_seq: number | string; global_position: number | string; recorded_at: Date | string }>`
    with appended as (
      insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, occurred_at, content_hash, chain_hash)
      select ${tenantId}, v.seq, ${streamType}, ${streamId}, v.version, v.event_id, v.event_type, v.schema_version, v.data, ${metadataJson}::jsonb, ${occurredAt}::timestamptz, v.content_hash, v.chain_hash
      from (values ${values}) as v (seq, version, event_id, event_type, schema_version, data, content_hash, chain_hash)
      where (select coalesce(max(stream_version), 0) from events
             where tenant_id = ${tenantId} and stream_type = ${streamType} and stream_id = ${streamId}) = ${baseVersion}::int
      returning tenant_seq, global_position, recorded_at
    ), moved as (
      update tenant_heads set last_seq = ${last.sequence}::bigint, last_chain_hash = ${last.chain}::text
      where tenant_id = ${tenantId} and exists (select 1 from appended)
    )
    select tenant_seq, global_position, recorded_at from appended order by tenant_seq`.execute(trx);

  // Nothing was written then: the insert and the head update both depend on the version check.
  if (inserted.length === 0) throw await conflict(trx, request);

  const metadataStored = JSON.parse(metadataJson) as StoredEvent["metadata"];
  const stored: StoredEvent[] = rows.map((r, i) => {
    const row = inserted[i]!;
    return {
      tenantId,
      sequence: Number(row.tenant_seq),
      globalPosition: Number(row.global_position),
      streamType,
      streamId,
      streamVersion: r.version,
      eventId: r.eventId,
      type: r.type,
      schemaVersion: r.schemaVersion,
      // What the database holds, as a read would return it (JSON round trip: no undefined, no Dates).
      data: JSON.parse(r.dataJson) as Record<string, unknown>,
      metadata: metadataStored,
      occurredAt,
      recordedAt: new Date(row.recorded_at).toISOString(),
      contentHash: r.content,
      chainHash: r.chain,
    };
  });
  await applyProjections(trx, stored);
  return stored;
}

async function conflict(trx: Tx, { tenantId, streamType, streamId, expectedVersion }: AppendRequest): Promise<ConflictError> {
  const actualVersion = await streamVersion(trx, tenantId, streamType, streamId);
  return new ConflictError(`${streamType} ${streamId} was changed concurrently (expected version ${expectedVersion}, found ${actualVersion})`, {
    expectedVersion,
    actualVersion,
  });
}

async function streamVersion(trx: Tx, tenantId: string, streamType: string, streamId: string): Promise<number> {
  const { rows } = await sql<{ version: number }>`
    select coalesce(max(stream_version), 0)::int as version from events
    where tenant_id = ${tenantId} and stream_type = ${streamType} and stream_id = ${streamId}`.execute(trx);
  return rows[0]!.version;
}

async function lockTenantHead(trx: Tx, tenantId: string): Promise<{ lastSeq: number; lastChainHash: string }> {
  const select = () =>
    trx.selectFrom("tenant_heads").select(["last_seq", "last_chain_hash"]).where("tenant_id", "=", tenantId).forUpdate().executeTakeFirst();
  let head = await select();
  if (!head) {
    // First event of this tenant: create its head at genesis (a racing first append waits on the insert).
    await trx
      .insertInto("tenant_heads")
      .values({ tenant_id: tenantId, last_seq: 0, last_chain_hash: genesisHash(tenantId) })
      .onConflict((oc) => oc.column("tenant_id").doNothing())
      .execute();
    head = await select();
  }
  return { lastSeq: Number(head!.last_seq), lastChainHash: head!.last_chain_hash };
}
