import { sql } from "kysely";
import { withPlatform, type Db } from "../store/db.ts";
import { rowToStoredEvent } from "../store/events/rowToStoredEvent.ts";
import { applyProjections, projections } from "../store/projections/applyProjections.ts";

const PAGE = 1000;

/**
 * Replays the whole log into empty read tables in one transaction: other processes keep reading the
 * old tables until it commits, then see the rebuilt ones.
 */
export async function rebuildProjections(db: Db, onProgress: (done: number, total: number) => void = () => {}): Promise<{ events: number }> {
  return withPlatform(db, async (trx) => {
    const tables = [...new Set(projections.flatMap((p) => p.tables))];
    // Lock the read tables so no append projects into them while they are rebuilt.
    await sql.raw(`lock table ${tables.join(", ")} in exclusive mode`).execute(trx);
    for (const table of tables) await trx.deleteFrom(table).execute();
    const { count } = await trx.selectFrom("events").select((eb) => eb.fn.countAll<number>().as("count")).executeTakeFirstOrThrow();
    const total = Number(count);
    let done = 0;
    let cursor: number | undefined;
    onProgress(0, total);
    for (;;) {
      let q = trx.selectFrom("events").selectAll();
      if (cursor !== undefined) q = q.where("global_position", ">", cursor);
      // Global order: read models that span tenants (one owner per GitHub installation) see history as it happened.
      const rows = await q.orderBy("global_position").limit(PAGE).execute();
      if (rows.length === 0) break;
      await applyProjections(trx, rows.map(rowToStoredEvent));
      done += rows.length;
      const last = rows[rows.length - 1]!;
      cursor = Number(last.global_position);
      onProgress(done, total);
    }
    return { events: done };
  });
}
