import type { Actor } from "../auth/actor.ts";
import type { Tier } from "../domain/tenant/events.ts";
import type { WindowUsage } from "../limits/rateLimits.ts";
import { withTenant } from "../store/db.ts";
import { tenantTier } from "../store/queries/tenantQueries.ts";
import { agentQuotaUsage } from "./agents/quotas.ts";
import type { AppDeps } from "./deps.ts";

export interface TenantUsage {
  tier: Tier;
  /** False where this Keyplane counts no requests (RATE_LIMITS off): requests and cost then read 0. */
  requestLimitsEnforced: boolean;
  /** API requests and query cost in the current minute (the shared limit store's counters). */
  requests: WindowUsage;
  cost: WindowUsage;
  /** Agent creations in the last day and updates in the last hour (counted from the log). */
  agentCreations: Omit<WindowUsage, "resetSeconds">;
  agentUpdates: Omit<WindowUsage, "resetSeconds">;
}

/** What the caller's tenant has used of what its tier allows, counting nothing. */
export function tenantUsage(deps: Pick<AppDeps, "db" | "limits" | "now" | "config">, actor: Actor): Promise<TenantUsage> {
  return withTenant(deps.db, actor.tenantId, async (trx) => {
    const tier = (await tenantTier(trx, actor.tenantId)) ?? "free";
    const [agents, window] = await Promise.all([
      agentQuotaUsage(trx, actor.tenantId, tier, deps.now(), deps.config.limits.agentQuotas),
      deps.limits.tenantUsage(actor.tenantId, tier),
    ]);
    return { tier, requestLimitsEnforced: deps.limits.enabled, ...window, agentCreations: agents["agent-create"], agentUpdates: agents["agent-update"] };
  });
}
