import { withPlatform, type DatabaseHandle } from "../../store/db.ts";
import { readRetentionCandidates } from "../../store/retention/pruneQueries.ts";
import { periodicJob } from "../../runtime/periodicJob.ts";
import { processOwner } from "../../runtime/leasedWorkers.ts";
import { pruneTenantLog, type PruneOutcome, type RetentionDeps } from "./pruneTenantLog.ts";

export interface RetentionJob {
  start(): void;
  stop(): Promise<void>;
  /** Looks at every tenant not under legal hold once; what happened to each. */
  runOnce(): Promise<Record<string, PruneOutcome>>;
}

/**
 * Every AUDIT_PRUNE_INTERVAL_SECONDS (±25 %), each process goes through the tenants and prunes those
 * with events older than their period (pruneTenantLog); a tenant's lease makes one process do it.
 */
export function createRetentionJob(deps: RetentionDeps, database: Pick<DatabaseHandle, "pool"> = {}): RetentionJob {
  const owner = processOwner();
  // Stopping ends a long prune between two of its steps rather than after the whole range.
  let stopping = new AbortController();
  async function runOnce() {
    const outcomes: Record<string, PruneOutcome> = {};
    for (let after = ""; ; ) {
      const page = await withPlatform(deps.db, (trx) => readRetentionCandidates(trx, after, 500));
      for (const tenantId of page) {
        try {
          if (stopping.signal.aborted) return outcomes;
          outcomes[tenantId] = await pruneTenantLog(deps, tenantId, { owner, database, signal: stopping.signal });
        } catch (error) {
          // One tenant's failure does not hold back the others (a failed step removed nothing).
          deps.logger.error({ err: error, tenantId }, "audit retention failed");
          outcomes[tenantId] = { outcome: "failed", steps: [], error: error instanceof Error ? error.message : String(error) };
        }
      }
      if (page.length < 500) return outcomes;
      after = page[page.length - 1]!;
    }
  }
  const job = periodicJob("audit retention", deps.config.audit.pruneIntervalSeconds * 1000, runOnce, deps.logger);
  return {
    start() {
      if (stopping.signal.aborted) stopping = new AbortController();
      job.start();
    },
    async stop() {
      stopping.abort();
      await job.stop();
    },
    runOnce,
  };
}
