import { sql } from "kysely";
import { withTenant, type Db } from "../db.ts";
import { rowToStoredEvent } from "../events/rowToStoredEvent.ts";
import type { StoredEvent } from "../events/types.ts";
import { readKeysetPage, type Page } from "../queries/keysetPage.ts";
import { readPrunedPrefix, type PrunedPrefix } from "../retention/prunedPrefix.ts";

export interface AuditLogFilter {
  types?: string[];
  actor?: string;
  streamId?: string;
  from?: Date;
  to?: Date;
}

/**
 * A page of the tenant's log by sequence, in either direction. Paging on from a cursor oldest first,
 * it also says where retention pruned the log (null: nothing), in the same transaction: a cursor
 * behind that is answered PRUNED by the caller, not with a page that silently skips.
 */
export function readAuditLogPage(
  db: Db,
  tenantId: string,
  options: { filter: AuditLogFilter; afterSequence?: number; first: number; newestFirst: boolean },
): Promise<Page<StoredEvent> & { pruned?: PrunedPrefix | null }> {
  const { filter, afterSequence, first, newestFirst } = options;
  return withTenant(db, tenantId, async (trx) => {
    let q = trx.selectFrom("events").selectAll().where("tenant_id", "=", tenantId);
    if (filter.types?.length) q = q.where("event_type", "in", filter.types);
    if (filter.actor) q = q.where(sql<string>`metadata #>> '{actor,subject}'`, "=", filter.actor);
    if (filter.streamId) q = q.where("stream_id", "=", filter.streamId);
    if (filter.from) q = q.where("occurred_at", ">=", filter.from);
    if (filter.to) q = q.where("occurred_at", "<", filter.to);
    const after = afterSequence === undefined ? undefined : [afterSequence];
    const pruned = after && !newestFirst ? await readPrunedPrefix(trx, tenantId) : undefined;
    const page = await readKeysetPage(q, { columns: ["tenant_seq"], direction: newestFirst ? "desc" : "asc" }, { first, after });
    return { rows: page.rows.map(rowToStoredEvent), hasNextPage: page.hasNextPage, pruned };
  });
}
