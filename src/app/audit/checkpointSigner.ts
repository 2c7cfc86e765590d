import { withPlatform } from "../../store/db.ts";
import { readTenantsToCheckpoint } from "../../store/audit/checkpointQueries.ts";
import { periodicJob } from "../../runtime/periodicJob.ts";
import { signCheckpoint, type CheckpointDeps, type CheckpointOutcome } from "./signCheckpoint.ts";

export interface CheckpointSigner {
  start(): void;
  stop(): Promise<void>;
  /** Signs for every tenant that is due (`force`: every tenant with new events, however recent). */
  runOnce(options?: { force?: boolean }): Promise<Record<string, CheckpointOutcome>>;
}

/**
 * Each tenant with events since its latest checkpoint gets a new one once the oldest of those
 * events is `intervalSeconds` old: every event is under a signed checkpoint within about one
 * interval, and a quiet tenant costs nothing. Every process runs the job, looking every minute (or
 * every interval, if shorter), so restarts never starve it; signCheckpoint's advisory lock makes
 * processes sign each checkpoint once.
 */
export function createCheckpointSigner(deps: CheckpointDeps, options: { intervalSeconds: number }): CheckpointSigner {
  async function runOnce({ force = false } = {}) {
    const olderThan = force ? null : new Date(deps.now().getTime() - options.intervalSeconds * 1000);
    const tenants = await withPlatform(deps.db, (trx) => readTenantsToCheckpoint(trx, olderThan));
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
