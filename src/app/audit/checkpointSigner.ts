import { withPlatform } from "../../store/db.ts";
import { readTenantsToCheckpoint } from "../../store/audit/checkpointQueries.ts";
import { periodicJob } from "../periodicJob.ts";
import { signCheckpoint, type CheckpointDeps, type CheckpointOutcome } from "./signCheckpoint.ts";

export interface CheckpointSigner {
  start(): void;
  stop(): Promise<void>;
  /** Signs for every tenant that is due (`force`: every tenant with new events, whatever the age of its checkpoint). */
  runOnce(options?: { force?: boolean }): Promise<Record<string, CheckpointOutcome>>;
}

/**
 * At least every `intervalSeconds`, each tenant with events since its latest checkpoint gets a new
 * one. Every process runs the job; it looks every minute (or every interval, if shorter) for tenants
 * whose checkpoint is older than the interval, so restarts never starve it, and signCheckpoint's
 * advisory lock makes processes sign each checkpoint once.
 */
export function createCheckpointSigner(deps: CheckpointDeps, options: { intervalSeconds: number }): CheckpointSigner {
  async function runOnce({ force = false } = {}) {
    const signedBefore = force ? null : new Date(deps.now().getTime() - options.intervalSeconds * 1000);
    const tenants = await withPlatform(deps.db, (trx) => readTenantsToCheckpoint(trx, signedBefore));
    const outcomes: Record<string, CheckpointOutcome> = {};
    for (const tenantId of tenants) {
      try {
        outcomes[tenantId] = await signCheckpoint(deps, tenantId);
      } catch (error) {
        // One tenant's failure does not hold back the others.
        deps.logger.error({ err: error, tenantId }, "audit checkpoint failed");
      }
    }
    return outcomes;
  }
  const job = periodicJob("audit checkpoints", Math.min(options.intervalSeconds, 60) * 1000, runOnce, deps.logger);
  return { start: job.start, stop: job.stop, runOnce };
}
