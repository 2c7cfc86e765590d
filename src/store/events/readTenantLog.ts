import { sql, type Selectable } from "kysely";
import type { Db, Tx } from "../db.ts";
import type { EventsTable } from "../schema.ts";
import { rowToStoredEvent } from "./rowToStoredEvent.ts";
import type { StoredEvent } from "./types.ts";

// The live feed's reads of the tenants' logs: where each ends, and the events after a sequence.

/**
 * The tenant's events after a sequence, as one statement on its own, without a transaction
 * (keyplane_events_after, scoped to the tenant by itself; on Citus run on the tenant's node): the
 * live feed's, once per wake-up.
 */
export async function eventsAfterAlone(db: Db, tenantId: string, afterSequence: number, limit: number): Promise<StoredEvent[]> {
  const { rows } = await sql<{ rows: Array<Selectable<EventsTable>> }>`select keyplane_events_after(${tenantId}, ${afterSequence}, ${limit}) as rows`.execute(
    db,
  );
  return rows[0]!.rows.map(rowToStoredEvent);
}

/** The last sequence of each of these tenants' logs (tenants without events are left out). */
export function tenantHeads(trx: Tx, tenantIds: string[]): Promise<Array<{ tenant_id: string; last_seq: number }>> {
  if (tenantIds.length === 0) return Promise.resolve([]);
  return trx.selectFrom("tenant_heads").select(["tenant_id", "last_seq"]).where("tenant_id", "in", tenantIds).execute();
}
