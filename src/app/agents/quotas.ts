import { sql } from "kysely";
import { DEFAULT_AGENT_QUOTAS, type AgentQuota, type TierTable } from "../../config/limitDefaults.ts";
import { AGENT_QUOTA_WINDOW_SECONDS } from "../../limits/policies.ts";
import { RateLimitedError } from "../../errors.ts";
import type { Tx } from "../../store/db.ts";
import { countOccurrences, latestOccurrences } from "../../store/queries/latestOccurrences.ts";
import { tenantTier } from "../../store/queries/tenantQueries.ts";

// The product's tier table for agents (creations per day, updates per hour; null = unlimited) lives
// with the other default limits in src/config/limitDefaults.ts and is configuration
// (AGENT_CREATES_PER_DAY, AGENT_UPDATES_PER_HOUR). Counted from the tenant's own log, under a
// per-tenant advisory lock, so every Keyplane process sharing the database sees one count.
export { DEFAULT_AGENT_QUOTAS as AGENT_QUOTAS, type AgentQuota } from "../../config/limitDefaults.ts";
const WINDOW_SECONDS = AGENT_QUOTA_WINDOW_SECONDS;
const EVENT_TYPE: Record<AgentQuota, string> = { "agent-create": "agent.created", "agent-update": "agent.updated" };

export class QuotaExceededError extends RateLimitedError {
  constructor(
    readonly quota: AgentQuota,
    readonly limit: number,
    retryAfter: number,
  ) {
    super(
      `${quota === "agent-create" ? "agent creations" : "agent updates"} are limited to ${limit} per ${quota === "agent-create" ? "day" : "hour"} on this tier; retry in ${retryAfter} s`,
      retryAfter,
    );
  }
}

/** Inside the tenant transaction that will append: refuses when the window is full. */
export async function checkAgentQuota(
  trx: Tx,
  tenantId: string,
  quota: AgentQuota,
  now: Date,
  quotas: TierTable<Record<AgentQuota, number | null>> = DEFAULT_AGENT_QUOTAS,
): Promise<void> {
  const limit = quotas[(await tenantTier(trx, tenantId)) ?? "free"][quota];
  if (limit === null) return;
  await sql`select pg_advisory_xact_lock(hashtextextended(${`keyplane:quota:${tenantId}:${quota}`}, 0))`.execute(trx);
  const since = new Date(now.getTime() - WINDOW_SECONDS[quota] * 1000);
  const times = await latestOccurrences(trx, tenantId, EVENT_TYPE[quota], since, limit);
  if (times.length < limit) return;
  const oldest = times[times.length - 1]!;
  const retryAfter = Math.max(1, Math.ceil((oldest.getTime() + WINDOW_SECONDS[quota] * 1000 - now.getTime()) / 1000));
  throw new QuotaExceededError(quota, limit, retryAfter);
}

/** What each agent quota's window holds now, against the tier's limit (null: unlimited): the console's overview. */
export async function agentQuotaUsage(
  trx: Tx,
  tenantId: string,
  tier: keyof TierTable<unknown>,
  now: Date,
  quotas: TierTable<Record<AgentQuota, number | null>> = DEFAULT_AGENT_QUOTAS,
): Promise<Record<AgentQuota, { used: number; limit: number | null; windowSeconds: number }>> {
  const usage = async (quota: AgentQuota) => ({
    used: await countOccurrences(trx, tenantId, EVENT_TYPE[quota], new Date(now.getTime() - WINDOW_SECONDS[quota] * 1000)),
    limit: quotas[tier][quota],
    windowSeconds: WINDOW_SECONDS[quota],
  });
  return { "agent-create": await usage("agent-create"), "agent-update": await usage("agent-update") };
}
