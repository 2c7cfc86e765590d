import { sql } from "kysely";
import type { Tx } from "../db.ts";

/** Where a tenant's log starts after retention pruned it: the sequences removed and the checkpoint they end at. */
export interface PrunedPrefix {
  /** The last pruned sequence: the anchoring checkpoint's. The log holds every sequence after it. */
  throughSequence: number;
  chainHash: string;
  /** When the last pruned event occurred: nothing that occurred before it is left. */
  lastOccurredAt: Date;
}

/** The tenant's pruned prefix, null when nothing was ever pruned. */
export async function readPrunedPrefix(trx: Tx, tenantId: string): Promise<PrunedPrefix | null> {
  const { rows } = await sql<{ upto_seq: number; chain_hash: string; upto_occurred_at: Date | string }>`
    select upto_seq, chain_hash, upto_occurred_at from audit_prunes where tenant_id = ${tenantId} order by upto_seq desc limit 1`.execute(trx);
  const row = rows[0];
  return row ? { throughSequence: Number(row.upto_seq), chainHash: row.chain_hash, lastOccurredAt: new Date(row.upto_occurred_at) } : null;
}
