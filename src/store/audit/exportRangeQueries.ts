import { sql } from "kysely";
import type { Tx } from "../db.ts";

// A time window as a range of sequences. Occurrence times follow sequences only roughly (clocks of
// several processes), so the bounds are the extreme sequences inside the window, and rows between
// them that fall outside it are exported as stubs.

/** The smallest sequence that occurred at or after `from`, null when none did. */
export async function readFirstSequenceFrom(trx: Tx, tenantId: string, from: Date): Promise<number | null> {
  const { rows } = await sql<{ seq: number | null }>`
    select min(tenant_seq) as seq from events where tenant_id = ${tenantId} and occurred_at >= ${from}::timestamptz`.execute(trx);
  return rows[0]?.seq == null ? null : Number(rows[0].seq);
}

/** The largest sequence that occurred before `to`, null when none did. */
export async function readLastSequenceBefore(trx: Tx, tenantId: string, to: Date): Promise<number | null> {
  const { rows } = await sql<{ seq: number | null }>`
    select max(tenant_seq) as seq from events where tenant_id = ${tenantId} and occurred_at < ${to}::timestamptz`.execute(trx);
  return rows[0]?.seq == null ? null : Number(rows[0].seq);
}
