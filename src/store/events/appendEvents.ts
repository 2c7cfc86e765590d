import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { validateEventData } from "../../domain/eventRegistry.ts";
import { ConflictError } from "../../errors.ts";
import type { Tx } from "../db.ts";
import { applyProjections } from "../projections/applyProjections.ts";
import { chainHash, contentHash, genesisHash } from "./hashing.ts";
import { rowToStoredEvent } from "./rowToStoredEvent.ts";
import type { AppendRequest, StoredEvent } from "./types.ts";

/**
 * The one write path: appends events to a stream in the tenant's hash-chained log and projects them
 * into the read tables, all inside the caller's transaction (opened with withTenant).
 *
 * The tenant head row is locked first, so appends of one tenant are serialized: sequences are dense,
 * become visible in commit order, and the stream-version check below cannot race.
 */
export async function appendEvents(trx: Tx, request: AppendRequest): Promise<StoredEvent[]> {
  const { tenantId, streamType, streamId, expectedVersion, metadata } = request;
  if (request.events.length === 0) return [];
  const validated = request.events.map((e) => ({ type: e.type, ...validateEventData(e.type, e.data) }));

  const head = await lockTenantHead(trx, tenantId);

  const { rows } = await sql<{ version: number }>`
    select coalesce(max(stream_version), 0)::int as version from events
    where tenant_id = ${tenantId} and stream_type = ${streamType} and stream_id = ${streamId}`.execute(trx);
  const currentVersion = rows[0]!.version;
  if (expectedVersion !== "any" && expectedVersion !== currentVersion) {
    throw new ConflictError(`${streamType} ${streamId} was changed concurrently (expected version ${expectedVersion}, found ${currentVersion})`, {
      expectedVersion,
      actualVersion: currentVersion,
    });
  }

  const occurredAt = new Date().toISOString();
  let previous = head.lastChainHash;
  const values = validated.map((event, i) => {
    const sequence = head.lastSeq + i + 1;
    const eventId = randomUUID();
    const streamVersion = currentVersion + i + 1;
    const content = contentHash({ eventId, tenantId, streamType, streamId, streamVersion, type: event.type, schemaVersion: event.schemaVersion, data: event.data, metadata, occurredAt });
    previous = chainHash(previous, sequence, content);
    return {
      tenant_id: tenantId,
      tenant_seq: sequence,
      stream_type: streamType,
      stream_id: streamId,
      stream_version: streamVersion,
      event_id: eventId,
      event_type: event.type,
      schema_version: event.schemaVersion,
      data: JSON.stringify(event.data),
      metadata: JSON.stringify(metadata),
      occurred_at: occurredAt,
      content_hash: content,
      chain_hash: previous,
    };
  });

  const inserted = await trx.insertInto("events").values(values).returningAll().execute();
  const last = values[values.length - 1]!;
  await trx
    .updateTable("tenant_heads")
    .set({ last_seq: last.tenant_seq, last_chain_hash: last.chain_hash })
    .where("tenant_id", "=", tenantId)
    .execute();

  const stored = inserted.map(rowToStoredEvent).sort((a, b) => a.sequence - b.sequence);
  await applyProjections(trx, stored);
  return stored;
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
  return { lastSeq: head!.last_seq, lastChainHash: head!.last_chain_hash };
}
