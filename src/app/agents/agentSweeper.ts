import { sql } from "kysely";
import { eventMetadata, systemActor } from "../../auth/actor.ts";
import { agentDecider, agentStream } from "../../domain/agent/decider.ts";
import { withPlatform } from "../../store/db.ts";
import { expiredEphemeralAgents, silentOnlineAgents } from "../../store/queries/agentQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { periodicJob } from "../../runtime/periodicJob.ts";

/** Agents marked offline, and ephemeral agents removed, per sweep at most (each kind). */
const SWEEP_BATCH = 500;

export interface AgentSweeper {
  start(): void;
  stop(): Promise<void>;
  runOnce(): Promise<{ offline: number; removed: number } | null>;
}

/**
 * Marks silent agents offline (one agent.offline each) and removes ephemeral agents a grace period
 * (default 30 minutes) after they went offline (agent.deleted, reason ephemeral-expired), then times out overdue tasks. Every
 * process runs it; a transaction-level advisory lock lets one sweep at a time do the work.
 */
export function createAgentSweeper(
  deps: Pick<AppDeps, "db" | "logger" | "now">,
  options: { offlineAfterSeconds: number; intervalSeconds: number; ephemeralGraceSeconds: number; afterSweep?: () => Promise<unknown> },
): AgentSweeper {
  async function runOnce() {
    const now = deps.now();
    const result = await withPlatform(deps.db, async (trx) => {
      const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtextextended('keyplane:agent-sweep', 0)) as locked`.execute(trx);
      if (!rows[0]?.locked) return null;
      const silentSince = new Date(now.getTime() - options.offlineAfterSeconds * 1000);
      const silent = await silentOnlineAgents(trx, silentSince, SWEEP_BATCH);
      for (const a of silent) {
        const meta = { tenantId: a.tenant_id, timestamp: now.toISOString() };
        await decideAndAppend(trx, {
          tenantId: a.tenant_id,
          ...agentStream(a.agent_id),
          decider: agentDecider,
          command: { type: "MarkOffline", lastSeenAt: new Date(a.last_seen_at).toISOString(), meta },
          metadata: eventMetadata(systemActor("agent-sweeper", a.tenant_id)),
          occurredAt: now,
        });
      }
      const expired = await expiredEphemeralAgents(trx, new Date(now.getTime() - options.ephemeralGraceSeconds * 1000), SWEEP_BATCH);
      for (const a of expired) {
        await decideAndAppend(trx, {
          tenantId: a.tenant_id,
          ...agentStream(a.agent_id),
          decider: agentDecider,
          command: { type: "DeleteAgent", reason: "ephemeral-expired", meta: { tenantId: a.tenant_id, timestamp: now.toISOString() } },
          metadata: eventMetadata(systemActor("agent-sweeper", a.tenant_id)),
          occurredAt: now,
        });
      }
      return { offline: silent.length, removed: expired.length };
    });
    await options.afterSweep?.();
    return result;
  }

  const job = periodicJob("agent sweep", options.intervalSeconds * 1000, runOnce, deps.logger);
  return { start: job.start, stop: job.stop, runOnce };
}
