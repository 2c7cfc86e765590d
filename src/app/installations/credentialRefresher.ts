import { withPlatform } from "../../store/db.ts";
import { installationsDueForRefresh } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { periodicJob } from "../../runtime/periodicJob.ts";
import { noticeExpiringIdentities } from "../identities/identityExpiryNotices.ts";
import { unlinkDeletedAgentsIdentities } from "../identities/unlinkIdentity.ts";
import { pruneInstallationState } from "./pruneInstallationState.ts";
import { currentCredentials } from "./refreshCredentials.ts";

export interface CredentialRefresher {
  start(): void;
  stop(): Promise<void>;
  /**
   * One sweep: refreshes every installation due, tells principals whose identity is about to end and
   * unlinks the identities of deleted agents; returns how many of each.
   */
  runOnce(): Promise<{ refreshed: number; failed: number; identitiesNoticed: number; identitiesUnlinked: number }>;
}

const BATCH = 100;

/**
 * Refreshes rotating credentials (Slack, Jira) ahead of expiry, so services rarely wait on a refresh,
 * and tells principals a day before their linked identity's refresh token ends.
 * Every process runs one; ticks are jittered and each refresh takes the installation's advisory
 * lock, so several processes cooperate instead of racing.
 */
export function createCredentialRefresher(
  deps: Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "logger" | "now">,
): CredentialRefresher {
  async function runOnce() {
    const due = await withPlatform(deps.db, (trx) => installationsDueForRefresh(trx, deps.now(), deps.config.installations.refreshWindowSeconds, BATCH));
    let refreshed = 0;
    let failed = 0;
    for (const { tenant_id, installation_id } of due) {
      try {
        const outcome = await currentCredentials(deps, tenant_id, installation_id);
        if (outcome.refreshed) refreshed++;
        if (outcome.refreshError) failed++;
      } catch (error) {
        failed++;
        deps.logger.debug(
          { tenantId: tenant_id, installationId: installation_id, code: (error as { code?: string }).code },
          "scheduled refresh did not complete",
        );
      }
    }
    await pruneInstallationState(deps);
    const identitiesNoticed = await noticeExpiringIdentities(deps).catch((error: unknown) => {
      deps.logger.warn({ err: error }, "telling principals of expiring identities did not complete");
      return 0;
    });
    const identitiesUnlinked = await unlinkDeletedAgentsIdentities(deps).catch((error: unknown) => {
      deps.logger.warn({ err: error }, "unlinking deleted agents' identities did not complete");
      return 0;
    });
    return { refreshed, failed, identitiesNoticed, identitiesUnlinked };
  }

  const job = periodicJob("credential refresh sweep", deps.config.installations.refreshIntervalSeconds * 1000, runOnce, deps.logger);
  return { start: job.start, stop: job.stop, runOnce };
}
