import type { JSONWebKeySet } from "jose";
import type { CheckpointRecord, ExportAnchor } from "../../audit/exportFormat.ts";
import { genesisHash } from "../../audit/hashing.ts";
import { verifyAuditRecords, type VerificationReport } from "../../audit/verifyAuditRecords.ts";
import { BadInputError } from "../../errors.ts";
import { readLatestCheckpoint, readTenantHead } from "../../store/audit/checkpointQueries.ts";
import { readLogRecords } from "../../store/audit/readLogRecords.ts";
import { withTenant, type Db } from "../../store/db.ts";
import { retainedStart } from "../retention/retainedLog.ts";

export interface LogVerification extends VerificationReport {
  /** The sequences asked for; the chain is verified from the anchor (genesis or the checkpoint before them). */
  fromSequence: number;
  toSequence: number;
}

export const anchorOf = (tenantId: string, checkpoint: CheckpointRecord | null): ExportAnchor => {
  if (!checkpoint) return { type: "genesis", sequence: 0, chainHash: genesisHash(tenantId) };
  const { kind: _kind, ...rest } = checkpoint;
  return { type: "checkpoint", ...rest };
};

/**
 * Verifies the tenant's rows in the database as an auditor verifies an export: content hashes,
 * the chain from genesis or from the latest signed checkpoint before `from` (by default the first
 * sequence retention kept, anchored on its checkpoint), every checkpoint's
 * signature against Keyplane's JWKS, and (up to the end of the log) the tenant's head. Reads in
 * pages: constant memory, no long transaction.
 */
export async function verifyAuditLog(
  deps: { db: Db; jwks: JSONWebKeySet },
  tenantId: string,
  range: { from?: number | null; to?: number | null } = {},
): Promise<LogVerification> {
  if (range.from != null && (!Number.isSafeInteger(range.from) || range.from < 1)) throw new BadInputError("from: must be a sequence of 1 or more", "from");
  if (range.to != null && (!Number.isSafeInteger(range.to) || range.to < (range.from ?? 1)))
    throw new BadInputError("to: must be a sequence not below from", "to");
  const { head, checkpoint, from } = await withTenant(deps.db, tenantId, async (trx) => {
    // After retention pruned a prefix, the log verifies from its anchor (a pruned `from` is PRUNED).
    const pruned = await retainedStart(trx, tenantId, { what: "from", sequence: range.from });
    const from = range.from ?? (pruned ? pruned.throughSequence + 1 : 1);
    const head = await readTenantHead(trx, tenantId);
    return { head, from, checkpoint: from > 1 ? await readLatestCheckpoint(trx, tenantId, Math.min(from - 1, head?.lastSequence ?? 0)) : null };
  });
  const last = head?.lastSequence ?? 0;
  const to = Math.min(range.to ?? last, last);
  const anchor = anchorOf(tenantId, checkpoint);
  const report = await verifyAuditRecords(readLogRecords(deps.db, tenantId, { after: anchor.sequence, upTo: to }), {
    source: "log",
    tenantId,
    anchor,
    // Up to the end of the log, the rows must reach the head's sequence and chain hash (a cut tail shows).
    ...(head && to === last ? { head } : {}),
    keys: deps.jwks,
  });
  return { ...report, fromSequence: from, toSequence: to };
}
