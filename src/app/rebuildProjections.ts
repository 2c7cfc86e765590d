import { sql } from "kysely";
import { withPlatform, type Db } from "../store/db.ts";
import { rowToStoredEvent } from "../store/events/rowToStoredEvent.ts";
import { executeStatements, projectionStatements, projections } from "../store/projections/applyProjections.ts";

const PAGE = 1000;

/**
 * Replays the whole log into empty read tables in one transaction: other processes keep reading the
 * old tables until it commits, then see the rebuilt ones. Tenant by tenant, each in its own order
 * (there is no order across tenants); read models spanning tenants are derived afterwards.
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
    let cursor: { tenantId: string; seq: number } | undefined;
    onProgress(0, total);
    for (;;) {
      let q = trx.selectFrom("events").selectAll();
      if (cursor) q = q.where((eb) => eb.or([eb("tenant_id", ">", cursor!.tenantId), eb.and([eb("tenant_id", "=", cursor!.tenantId), eb("tenant_seq", ">", cursor!.seq)])]));
      const rows = await q.orderBy("tenant_id").orderBy("tenant_seq").limit(PAGE).execute();
      if (rows.length === 0) break;
      await executeStatements(trx, projectionStatements(rows.map(rowToStoredEvent), true));
      done += rows.length;
      const last = rows[rows.length - 1]!;
      cursor = { tenantId: last.tenant_id, seq: Number(last.tenant_seq) };
      onProgress(done, total);
    }
    for (const projection of projections) await projection.deriveAfterReplay?.(trx);
    return { events: done };
  });
}
