import { sql, type Selectable } from "kysely";
import { withTenant, type Db, type Tx } from "../db.ts";
import { rowToStoredEvent } from "../events/rowToStoredEvent.ts";
import type { StoredEvent } from "../events/types.ts";
import type { EventsTable } from "../schema.ts";
import { readKeysetPage, type Page } from "./keysetPage.ts";

export interface AuditLogFilter {
  types?: string[];
  actor?: string;
  streamId?: string;
  from?: Date;
  to?: Date;
}

/** A page of the tenant's log by sequence, in either direction. */
export function readAuditLogPage(
  db: Db,
  tenantId: string,
  options: { filter: AuditLogFilter; afterSequence?: number; first: number; newestFirst: boolean },
): Promise<Page<StoredEvent>> {
  const { filter, afterSequence, first, newestFirst } = options;
  return withTenant(db, tenantId, async (trx) => {
    let q = trx.selectFrom("events").selectAll().where("tenant_id", "=", tenantId);
    if (filter.types?.length) q = q.where("event_type", "in", filter.types);
    if (filter.actor) q = q.where(sql<string>`metadata #>> '{actor,subject}'`, "=", filter.actor);
    if (filter.streamId) q = q.where("stream_id", "=", filter.streamId);
    if (filter.from) q = q.where("occurred_at", ">=", filter.from);
    if (filter.to) q = q.where("occurred_at", "<", filter.to);
    const after = afterSequence === undefined ? undefined : [afterSequence];
    const page = await readKeysetPage(q, { columns: ["tenant_seq"], direction: newestFirst ? "desc" : "asc" }, { first, after });
    return { rows: page.rows.map(rowToStoredEvent), hasNextPage: page.hasNextPage };
  });
}

/**
 * The same read as one statement on its own, without a transaction (keyplane_events_after, scoped to
 * the tenant by itself; on Citus run on the tenant's node): the live feed's, once per wake-up.
 */
export async function eventsAfterAlone(db: Db, tenantId: string, afterSequence: number, limit: number): Promise<StoredEvent[]> {
  const { rows } = await sql<{ rows: Array<Selectable<EventsTable>> }>`select keyplane_events_after(${tenantId}, ${afterSequence}, ${limit}) as rows`.execute(db);
  return rows[0]!.rows.map(rowToStoredEvent);
}

/** The last sequence of each of these tenants' logs (tenants without events are left out). */
export function tenantHeads(trx: Tx, tenantIds: string[]): Promise<Array<{ tenant_id: string; last_seq: number }>> {
  if (tenantIds.length === 0) return Promise.resolve([]);
  return trx.selectFrom("tenant_heads").select(["tenant_id", "last_seq"]).where("tenant_id", "in", tenantIds).execute();
}

/** When the latest `limit` events of a type since a time occurred, newest first (the agent quotas' window). */
export async function latestOccurrences(trx: Tx, tenantId: string, eventType: string, since: Date, limit: number): Promise<Date[]> {
  const rows = await trx
    .selectFrom("events")
    .select("occurred_at")
    .where("tenant_id", "=", tenantId)
    .where("event_type", "=", eventType)
    .where("occurred_at", ">", since)
    .orderBy("occurred_at", "desc")
    .limit(limit)
    .execute();
  return rows.map((r) => new Date(r.occurred_at));
}
