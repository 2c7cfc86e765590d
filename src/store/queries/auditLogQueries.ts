import { sql } from "kysely";
import { withTenant, type Db } from "../db.ts";
import { rowToStoredEvent } from "../events/rowToStoredEvent.ts";
import type { StoredEvent } from "../events/types.ts";

export interface AuditLogFilter {
  types?: string[];
  actor?: string;
  streamId?: string;
  from?: Date;
  to?: Date;
}

/**
 * A page of the tenant's log by sequence, in either direction. Reads `limit + 1` rows so the caller
 * knows whether another page follows.
 */
export async function readAuditLogPage(
  db: Db,
  tenantId: string,
  options: { filter: AuditLogFilter; afterSequence?: number; limit: number; newestFirst: boolean },
): Promise<{ events: StoredEvent[]; hasMore: boolean }> {
  const { filter, afterSequence, limit, newestFirst } = options;
  const rows = await withTenant(db, tenantId, (trx) => {
    let q = trx.selectFrom("events").selectAll().where("tenant_id", "=", tenantId);
    if (afterSequence !== undefined) q = q.where("tenant_seq", newestFirst ? "<" : ">", afterSequence);
    if (filter.types?.length) q = q.where("event_type", "in", filter.types);
    if (filter.actor) q = q.where(sql<string>`metadata #>> '{actor,subject}'`, "=", filter.actor);
    if (filter.streamId) q = q.where("stream_id", "=", filter.streamId);
    if (filter.from) q = q.where("occurred_at", ">=", filter.from);
    if (filter.to) q = q.where("occurred_at", "<", filter.to);
    return q.orderBy("tenant_seq", newestFirst ? "desc" : "asc").limit(limit + 1).execute();
  });
  return { events: rows.slice(0, limit).map(rowToStoredEvent), hasMore: rows.length > limit };
}
