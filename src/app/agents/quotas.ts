import { sql } from "kysely";
import type { Tier } from "../../domain/tenant/events.ts";
import { RateLimitedError } from "../../errors.ts";
import type { Tx } from "../../store/db.ts";

// The product's tier table for agents: how many creations per day and updates per hour a tenant
// may make (null = unlimited). Counted from the tenant's own log, under a per-tenant advisory lock,
// so every Keyplane process sharing the database sees one count.
export const AGENT_QUOTAS: Record<Tier, Record<AgentQuota, number | null>> = {
  free: { "agent-create": 5, "agent-update": 20 },
  pro: { "agent-create": 20, "agent-update": 100 },
  enterprise: { "agent-create": null, "agent-update": null },
};
export type AgentQuota = "agent-create" | "agent-update";

const WINDOW_SECONDS: Record<AgentQuota, number> = { "agent-create": 86400, "agent-update": 3600 };
const EVENT_TYPE: Record<AgentQuota, string> = { "agent-create": "agent.created", "agent-update": "agent.updated" };

export class QuotaExceededError extends RateLimitedError {
  constructor(
    readonly quota: AgentQuota,
    readonly limit: number,
    retryAfter: number,
  ) {
    super(`${quota === "agent-create" ? "agent creations" : "agent updates"} are limited to ${limit} per ${quota === "agent-create" ? "day" : "hour"} on this tier; retry in ${retryAfter} s`, retryAfter);
  }
}

/** Inside the tenant transaction that will append: refuses when the window is full. */
export async function checkAgentQuota(trx: Tx, tenantId: string, quota: AgentQuota, now: Date): Promise<void> {
  const tenant = await trx.selectFrom("tenants").select("tier").where("tenant_id", "=", tenantId).executeTakeFirst();
  const limit = AGENT_QUOTAS[(tenant?.tier ?? "free") as Tier][quota];
  if (limit === null) return;
  await sql`select pg_advisory_xact_lock(hashtextextended(${`keyplane:quota:${tenantId}:${quota}`}, 0))`.execute(trx);
  const since = new Date(now.getTime() - WINDOW_SECONDS[quota] * 1000);
  const rows = await trx
    .selectFrom("events")
    .select("occurred_at")
    .where("tenant_id", "=", tenantId)
    .where("event_type", "=", EVENT_TYPE[quota])
    .where("occurred_at", ">", since)
    .orderBy("occurred_at", "desc")
    .limit(limit)
    .execute();
  if (rows.length < limit) return;
  const oldest = new Date(rows[rows.length - 1]!.occurred_at);
  const retryAfter = Math.max(1, Math.ceil((oldest.getTime() + WINDOW_SECONDS[quota] * 1000 - now.getTime()) / 1000));
  throw new QuotaExceededError(quota, limit, retryAfter);
}
