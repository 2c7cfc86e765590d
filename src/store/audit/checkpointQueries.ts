import { sql } from "kysely";
import type { CheckpointRecord } from "../../audit/exportFormat.ts";
import type { Tx } from "../db.ts";

interface CheckpointRow {
  tenant_seq: number;
  chain_hash: string;
  previous_signature: string | null;
  jws: string;
  kid: string;
  signed_at: Date | string;
}

const toRecord = (r: CheckpointRow): CheckpointRecord => ({
  kind: "checkpoint",
  sequence: Number(r.tenant_seq),
  chainHash: r.chain_hash,
  previousSignature: r.previous_signature,
  signedAt: new Date(r.signed_at).toISOString(),
  kid: r.kid,
  jws: r.jws,
});

/** The tenant's latest checkpoint at or before the sequence (its latest of all without one). */
export async function readLatestCheckpoint(trx: Tx, tenantId: string, atOrBefore?: number): Promise<CheckpointRecord | null> {
  const { rows } = await sql<CheckpointRow>`
    select tenant_seq, chain_hash, previous_signature, jws, kid, signed_at from audit_checkpoints
    where tenant_id = ${tenantId} and (${atOrBefore ?? null}::bigint is null or tenant_seq <= ${atOrBefore ?? null}::bigint)
    order by tenant_seq desc limit 1`.execute(trx);
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Checkpoints with sequence in (after, upTo], in order (the first `limit` of them). */
export async function readCheckpoints(trx: Tx, tenantId: string, range: { after: number; upTo: number }, limit = 10_000): Promise<CheckpointRecord[]> {
  const { rows } = await sql<CheckpointRow>`
    select tenant_seq, chain_hash, previous_signature, jws, kid, signed_at from audit_checkpoints
    where tenant_id = ${tenantId} and tenant_seq > ${range.after} and tenant_seq <= ${range.upTo}
    order by tenant_seq limit ${limit}`.execute(trx);
  return rows.map(toRecord);
}

export async function insertCheckpoint(trx: Tx, tenantId: string, c: CheckpointRecord): Promise<void> {
  await sql`insert into audit_checkpoints (tenant_id, tenant_seq, chain_hash, previous_signature, jws, kid, signed_at)
    values (${tenantId}, ${c.sequence}, ${c.chainHash}, ${c.previousSignature}, ${c.jws}, ${c.kid}, ${c.signedAt}::timestamptz)`.execute(trx);
}

/**
 * Tenants with events after their latest checkpoint, at least one of which occurred at or before
 * `olderThan` (any when null): an event waits about one interval at most for a checkpoint, and a
 * tenant without new events gets none. Platform-wide: the signer's work list.
 */
export async function readTenantsToCheckpoint(trx: Tx, olderThan: Date | null): Promise<string[]> {
  const { rows } = await sql<{ tenant_id: string }>`
    select h.tenant_id from tenant_heads h
    left join lateral (select c.tenant_seq from audit_checkpoints c where c.tenant_id = h.tenant_id order by c.tenant_seq desc limit 1) c on true
    where h.last_seq > coalesce(c.tenant_seq, 0)
      and (${olderThan}::timestamptz is null or exists (
        select 1 from events e where e.tenant_id = h.tenant_id and e.tenant_seq > coalesce(c.tenant_seq, 0) and e.occurred_at <= ${olderThan}::timestamptz))
    order by h.tenant_id`.execute(trx);
  return rows.map((r) => r.tenant_id);
}

/** The tenant's head: the last sequence and chain hash its appends wrote (none before its first event). */
export async function readTenantHead(trx: Tx, tenantId: string): Promise<{ lastSequence: number; lastChainHash: string } | null> {
  const { rows } = await sql<{ last_seq: number; last_chain_hash: string }>`
    select last_seq, last_chain_hash from tenant_heads where tenant_id = ${tenantId}`.execute(trx);
  return rows[0] ? { lastSequence: Number(rows[0].last_seq), lastChainHash: rows[0].last_chain_hash } : null;
}
