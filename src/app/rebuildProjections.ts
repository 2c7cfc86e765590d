import { sql } from "kysely";
import { withPlatform, type Db } from "../store/db.ts";
import { rowToStoredEvent } from "../store/events/rowToStoredEvent.ts";
import { executeStatements, projectionStatements, projections } from "../store/projections/applyProjections.ts";
import { readProjectionSnapshotPositions, restoreProjectionSnapshots } from "../store/retention/pruneQueries.ts";

const PAGE = 1000;

/**
 * Replays the whole log (from each tenant's projection snapshot, where retention pruned it) into empty read tables in one transaction: other processes keep reading the
 * old tables until it commits, then see the rebuilt ones. Tenant by tenant, each in its own order
 * (there is no order across tenants); read models spanning tenants are derived afterwards.
 */
export async function rebuildProjections(db: Db, onProgress: (done: number, total: number) => void = () => {}): Promise<{ events: number }> {
  return withPlatform(db, async (trx) => {
    const tables = [...new Set(projections.flatMap((p) => p.tables))];
    // Lock the read tables so no append projects into them while they are rebuilt.
    await sql.raw(`lock table ${tables.join(", ")} in exclusive mode`).execute(trx);
    for (const table of tables) await trx.deleteFrom(table).execute();
    // Where retention pruned a tenant's log, its read tables start from the snapshot taken then (at
    // its head of that moment) and only the events after it are replayed.
    await restoreProjectionSnapshots(trx);
    const snapshotAt = await readProjectionSnapshotPositions(trx);
    const afterSnapshot = (row: { tenant_id: string; tenant_seq: number | string }) => Number(row.tenant_seq) > (snapshotAt.get(row.tenant_id) ?? 0);
    const { count } = await trx
      .selectFrom("events")
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .executeTakeFirstOrThrow();
    const total = Number(count);
    let done = 0;
    onProgress(0, total);
    const readAfter = (cursor?: { tenant_id: string; tenant_seq: number }) => {
      let q = trx.selectFrom("events").selectAll();
      // A row comparison, which the primary key's index serves (an OR of the two would scan it).
      if (cursor) q = q.where((eb) => eb(eb.refTuple("tenant_id", "tenant_seq"), ">", eb.tuple(cursor.tenant_id, cursor.tenant_seq)));
      return q.orderBy("tenant_id").orderBy("tenant_seq").limit(PAGE).execute();
    };
    // Each page's writes in one round trip (consecutive inserts merged). While the database runs one
    // page's writes, the next page, read first, is compiled here.
    let rows = await readAfter();
    let statements = projectionStatements(rows.filter(afterSnapshot).map(rowToStoredEvent), true);
    while (rows.length > 0) {
      const last = rows[rows.length - 1]!;
      const reading = readAfter({ tenant_id: last.tenant_id, tenant_seq: Number(last.tenant_seq) });
      const writing = executeStatements(trx, statements);
      writing.catch(() => {}); // awaited below; the read's failure may come first
      done += rows.length;
      rows = await reading;
      statements = projectionStatements(rows.filter(afterSnapshot).map(rowToStoredEvent), true);
      await writing;
      onProgress(done, total);
    }
    for (const projection of projections) await projection.deriveAfterReplay?.(trx);
    return { events: done };
  });
}
