import { sql } from "kysely";
import { withPlatform, type Db } from "../db.ts";

/**
 * Seconds since the oldest event that no signed audit checkpoint covers yet, over every tenant; 0 when
 * every tenant's log is covered. Per tenant: its latest checkpoint and the event right after it, two
 * primary-key lookups, so the cost grows with the number of tenants with unsigned events, not with the log.
 */
export async function readOldestUnsignedEventAge(db: Db): Promise<number> {
  const { rows } = await withPlatform(db, (trx) =>
    sql<{ age: number | string | null }>`
      select extract(epoch from (now() - min(e.recorded_at))) as age
      from tenant_heads h
      left join lateral (
        select c.tenant_seq from audit_checkpoints c where c.tenant_id = h.tenant_id order by c.tenant_seq desc limit 1
      ) c on true
      join events e on e.tenant_id = h.tenant_id and e.tenant_seq = coalesce(c.tenant_seq, 0) + 1
      where h.last_seq > coalesce(c.tenant_seq, 0)`.execute(trx),
  );
  const age = rows[0]?.age;
  return age === null || age === undefined ? 0 : Math.max(0, Number(age));
}
