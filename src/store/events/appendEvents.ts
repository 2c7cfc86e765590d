import { randomUUID } from "node:crypto";
import { contentHash, genesisHash } from "../../audit/hashing.ts";
import { validateEventData } from "../../domain/eventRegistry.ts";
import { ConflictError } from "../../errors.ts";
import { countAppended } from "../../metrics.ts";
import { afterTransaction, insideOneTransaction } from "../ambientTransaction.ts";
import { withTenant, type Db, type Tx } from "../db.ts";
import { executeStatements, projectionStatements } from "../projections/applyProjections.ts";
import { statementJson } from "../projections/projectionSql.ts";
import { announceAppend, appendsCommitted } from "./announceAppends.ts";
import { appendCall, appendQueue, type AppendCall, type AppendResult } from "./appendQueue.ts";
import { jsonbOrder } from "./jsonbOrder.ts";
import type { AppendRequest, StoredEvent } from "./types.ts";

/**
 * The one write path: appends events to a stream in the tenant's hash-chained log and projects them
 * into the read tables.
 *
 * keyplane_append_tenant (migrations/0013) does it all in one statement: it scopes itself to the
 * tenant, locks the tenant head row, checks the stream version, assigns the dense sequence, extends
 * the chain, inserts, and runs the projection writes compiled here (projections/*.ts). Content hashes
 * are computed here. Given the database (`db`), the append is that one statement, committing on its
 * own, so the head lock is held only while it runs; concurrent ones of this process share a
 * statement and a commit (appendQueue.ts), except inside a unit of work's one transaction
 * (runInOneTransaction: an idempotent mutation), which it joins. Given a transaction, it joins it
 * (a use case that writes beside its append, such as the credential vault). Writes to lookup tables
 * run in a transaction too. Once committed, the append is announced (announceAppends.ts): to this
 * process's live feed and caches at once, to other processes by a NOTIFY.
 */
export async function appendEvents(target: Db | Tx, request: AppendRequest): Promise<StoredEvent[]> {
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
  const occurredAt = request.occurredAt.toISOString();

  // "any" appends after whatever the stream holds: the version this process's appends to it reached
  // is tried (0 in a caller's transaction), and on a conflict the one the function found.
  const hints = expectedVersion === "any" && !target.isTransaction ? versionHintsOf(target as Db) : undefined;
  const hintKey = `${tenantId}\u0000${streamType}\u0000${streamId}`;
  let base = expectedVersion === "any" ? (hints?.get(hintKey) ?? 0) : expectedVersion;
  hints?.remember(hintKey, base + validated.length);
  // A version no stream has: the function answers a conflict naming the one the stream has.
  if (!Number.isInteger(base) || base < 0) base = -1;
  for (let attempt = 1; ; attempt++) {
    const events = validated.map((event, i) => {
      const eventId = randomUUID();
      const content = contentHash({
        eventId,
        tenantId,
        streamType,
        streamId,
        streamVersion: base + i + 1,
        type: event.type,
        schemaVersion: event.schemaVersion,
        data: event.data,
        metadata: storedMetadata,
        occurredAt,
      });
      return { event_id: eventId, event_type: event.type, schema_version: event.schemaVersion, data: event.data, content_hash: content };
    });
    const statements = projectionStatements(
      events.map((e, i) => ({
        tenantId,
        streamType,
        streamId,
        streamVersion: base + i + 1,
        eventId: e.event_id,
        type: e.event_type,
        data: e.data,
        metadata: storedMetadata,
        occurredAt,
      })),
    );
    const lookup = statements.filter((s) => s.lookup);
    const call: AppendCall = {
      tenant: tenantId,
      genesis: genesisHash(tenantId),
      append: {
        stream_type: streamType,
        stream_id: streamId,
        expected_version: base,
        occurred_at: occurredAt,
        metadata: storedMetadata,
        events,
        projections: statements.filter((s) => !s.lookup).map(statementJson),
      },
    };

    // In a transaction (the caller's, or one of its own when the append writes beside its
    // statement), whose commit announces it; else on its own, announced here.
    let transaction: Tx | undefined;
    const inTransaction = async (trx: Tx): Promise<AppendResult> => {
      transaction = trx;
      const result = await appendCall(trx, call);
      if ("appended" in result) await executeStatements(trx, lookup);
      return result;
    };
    const inUnitOfWork = insideOneTransaction();
    const result = target.isTransaction
      ? await inTransaction(target as Tx)
      : lookup.length > 0
        ? await withTenant(target, tenantId, inTransaction)
        : inUnitOfWork
          ? await appendQueue(target).single(call)
          : await appendQueue(target).append(call);

    if (!("appended" in result)) {
      if (expectedVersion === "any" && attempt < ANY_ATTEMPTS) {
        // Behind the stream (another process appended): after it, and after what this process's other
        // appends to it have taken meanwhile. Ahead of it (a hint of appends that failed): at it.
        base = result.version < base ? result.version : Math.max(result.version, hints?.get(hintKey) ?? 0);
        hints?.remember(hintKey, base + validated.length);
        continue;
      }
      hints?.delete(hintKey);
      throw conflict(request, result.version);
    }

    // As a read of the rows would give them (jsonb's member order), for whoever gets them from memory.
    const orderedMetadata = jsonbOrder(storedMetadata);
    const stored: StoredEvent[] = result.appended.map((row, i) => ({
      tenantId,
      sequence: row.seq,
      streamType,
      streamId,
      streamVersion: row.version,
      eventId: events[i]!.event_id,
      type: events[i]!.event_type,
      schemaVersion: events[i]!.schema_version,
      data: jsonbOrder(events[i]!.data) as Record<string, unknown>,
      metadata: orderedMetadata,
      occurredAt,
      recordedAt: new Date(row.recorded_at).toISOString(),
      contentHash: events[i]!.content_hash,
      chainHash: row.chain_hash,
    }));
    if (transaction) announceAppend(transaction, stored);
    else if (!inUnitOfWork || !afterTransaction(async () => appendsCommitted(target as Db, stored))) appendsCommitted(target as Db, stored);
    countAppended(stored);
    return stored;
  }
}

/** Tries of an "any" append: each conflict means another process appended to the stream in between. */
const ANY_ATTEMPTS = 8;

/**
 * Per database, the version each "any" stream (security events, say) reached by this process's
 * appends: the next append tries it first, so that appends to one stream arriving together take
 * consecutive versions. Bounded: a forgotten stream costs one conflict and a retry.
 */
class VersionHints extends Map<string, number> {
  remember(key: string, version: number): void {
    this.delete(key);
    this.set(key, version);
    if (this.size > 10_000) this.delete(this.keys().next().value!);
  }
}
const versionHints = new WeakMap<Db, VersionHints>();
function versionHintsOf(db: Db): VersionHints {
  let hints = versionHints.get(db);
  if (!hints) versionHints.set(db, (hints = new VersionHints()));
  return hints;
}

function conflict({ streamType, streamId, expectedVersion }: AppendRequest, actualVersion: number): ConflictError {
  return new ConflictError(`${streamType} ${streamId} was changed concurrently (expected version ${expectedVersion}, found ${actualVersion})`, {
    expectedVersion,
    actualVersion,
  });
}
