import { sql } from "kysely";
import type { JSONWebKeySet } from "jose";
import type { AuditSigner } from "../../audit/auditSignatures.ts";
import { CHECKPOINT_JWS_TYPE, signatureOf, type CheckpointPayload, type CheckpointRecord } from "../../audit/exportFormat.ts";
import { verifyAuditRecords, type AuditProblem } from "../../audit/verifyAuditRecords.ts";
import type { Logger } from "../../logger.ts";
import { insertCheckpoint, readLatestCheckpoint, readTenantHead } from "../../store/audit/checkpointQueries.ts";
import { readLogRecords } from "../../store/audit/readLogRecords.ts";
import { withTenant, type Db } from "../../store/db.ts";
import { anchorOf } from "./verifyAuditLog.ts";

export type CheckpointDeps = { db: Db; auditSigner: AuditSigner; jwks: JSONWebKeySet; now: () => Date; logger: Logger };

export type CheckpointOutcome =
  | { outcome: "signed"; checkpoint: CheckpointRecord }
  | { outcome: "current" }
  /** The chain since the last checkpoint does not verify: Keyplane never signs a chain it cannot vouch for. */
  | { outcome: "refused"; problem: AuditProblem };

/**
 * Signs a checkpoint at the tenant's head: (tenant, sequence, chain hash, previous checkpoint's
 * signature). The events since the last checkpoint are verified first, outside any transaction;
 * the insert then runs under the tenant's advisory lock after re-reading the latest checkpoint, so
 * processes racing on one tenant sign once and the checkpoints form one chain.
 */
export async function signCheckpoint(deps: CheckpointDeps, tenantId: string): Promise<CheckpointOutcome> {
  const { head, previous } = await withTenant(deps.db, tenantId, async (trx) => ({
    head: await readTenantHead(trx, tenantId),
    previous: await readLatestCheckpoint(trx, tenantId),
  }));
  if (!head || head.lastSequence <= (previous?.sequence ?? 0)) return { outcome: "current" };
  const anchor = anchorOf(tenantId, previous);
  const report = await verifyAuditRecords(readLogRecords(deps.db, tenantId, { after: anchor.sequence, upTo: head.lastSequence }), {
    source: "log",
    tenantId,
    anchor,
    head,
    keys: deps.jwks,
  });
  if (report.problem) {
    deps.logger.error({ tenantId, problem: report.problem }, "the audit chain does not verify; no checkpoint signed");
    return { outcome: "refused", problem: report.problem };
  }
  return withTenant(deps.db, tenantId, async (trx): Promise<CheckpointOutcome> => {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`keyplane:audit-checkpoint:${tenantId}`}, 0))`.execute(trx);
    const latest = await readLatestCheckpoint(trx, tenantId);
    // Another process signed meanwhile: its checkpoint stands (a second one would fork the chain of checkpoints).
    if ((latest?.sequence ?? 0) !== (previous?.sequence ?? 0)) return { outcome: "current" };
    const payload: CheckpointPayload = {
      tenantId,
      sequence: head.lastSequence,
      chainHash: report.lastChainHash!,
      previousSignature: previous ? signatureOf(previous.jws) : null,
      signedAt: deps.now().toISOString(),
    };
    const { tenantId: _tenant, ...fields } = payload;
    const checkpoint: CheckpointRecord = {
      kind: "checkpoint",
      ...fields,
      kid: deps.auditSigner.kid,
      jws: await deps.auditSigner.sign(CHECKPOINT_JWS_TYPE, payload),
    };
    await insertCheckpoint(trx, tenantId, checkpoint);
    return { outcome: "signed", checkpoint };
  });
}
