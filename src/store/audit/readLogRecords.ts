import type { CheckpointRecord, EventRecord } from "../../audit/exportFormat.ts";
import { withTenant, type Db } from "../db.ts";
import { rowToStoredEvent } from "../events/rowToStoredEvent.ts";
import type { StoredEvent } from "../events/types.ts";
import { readCheckpoints } from "./checkpointQueries.ts";

const PAGE = 2000;

/** A stored event as the verifier reads it (its recorded time is not hashed). */
export function eventRecordOf({ recordedAt: _recorded, ...event }: StoredEvent): EventRecord {
  return { kind: "event", ...event };
}

/**
 * The tenant's rows with sequence in (after, upTo] as verifier records, each checkpoint right after
 * the event at its sequence. Pages by primary key, each page its own short transaction: no
 * transaction stays open while the caller verifies (on PGlite one would block every writer).
 */
export async function* readLogRecords(db: Db, tenantId: string, range: { after: number; upTo: number }): AsyncGenerator<EventRecord | CheckpointRecord> {
  for (let after = range.after; after < range.upTo; ) {
    const upTo = Math.min(after + PAGE, range.upTo);
    const { rows, checkpoints } = await withTenant(db, tenantId, async (trx) => ({
      rows: await trx
        .selectFrom("events")
        .selectAll()
        .where("tenant_id", "=", tenantId)
        .where("tenant_seq", ">", after)
        .where("tenant_seq", "<=", upTo)
        .orderBy("tenant_seq")
        .execute(),
      checkpoints: await readCheckpoints(trx, tenantId, { after, upTo }),
    }));
    let c = 0;
    for (const row of rows) {
      const e = eventRecordOf(rowToStoredEvent(row));
      while (c < checkpoints.length && checkpoints[c]!.sequence < e.sequence) yield checkpoints[c++]!;
      yield e;
    }
    while (c < checkpoints.length) yield checkpoints[c++]!;
    after = upTo;
  }
}
