/**
 * The product's default limits: what a tier allows when the environment says nothing (src/config.ts
 * reads the overrides; src/limits/policies.ts names the policies that use them). Configuration sits at
 * the bottom of the import graph, so the tier names are spelled here too; policies.ts holds them equal
 * to the domain's at compile time.
 */
export const TIER_NAMES = ["free", "pro", "enterprise"] as const;
export type TierName = (typeof TIER_NAMES)[number];
export type TierTable<T = number> = Record<TierName, T>;

/** API requests per minute per tenant (the product's tier table). */
export const DEFAULT_REQUESTS_PER_MINUTE: TierTable = { free: 60, pro: 300, enterprise: 1000 };
/** Query cost a tenant may spend per minute. */
export const DEFAULT_COST_PER_MINUTE: TierTable = { free: 3000, pro: 15000, enterprise: 50000 };
export const DEFAULT_PRINCIPAL_PER_MINUTE = 100;
/** API requests per enrolled agent and minute, by its tenant's tier (the seed's figure for every tier). */
export const DEFAULT_AGENT_PER_MINUTE: TierTable = { free: 100, pro: 100, enterprise: 100 };
export const DEFAULT_ANONYMOUS_PER_MINUTE = 60;
export const DEFAULT_OAUTH_PER_MINUTE = 30;
export const DEFAULT_WEBHOOKS_PER_MINUTE = 600;
export const DEFAULT_AUTH_FAILURES_PER_MINUTE = 30;
export const DEFAULT_AUDIT_EXPORTS_PER_HOUR = 20;

/**
 * The burst cap per ten seconds that keeps any 60-second span under twice the per-minute quota.
 * Fixed windows let a client spend a whole quota at the end of one window and another at the start
 * of the next; with at most b per ten seconds, a 60-second span overlaps at most 7 ten-second
 * windows, so it lets through at most min(2q, 7b) < 2q. Ten seconds rather than one: a dashboard
 * that loads a page sends several requests at once (free: 17 at once, not 1).
 */
export function defaultBurstPer10Seconds(perMinute: number): number {
  return Math.max(1, Math.floor((2 * perMinute - 1) / 7));
}

/**
 * The product's tier table for agents (the agents issue): creations per day and updates per hour,
 * null = unlimited. Counted from the tenant's own log under a per-tenant advisory lock
 * (src/app/agents/quotas.ts), so every process shares them without a limit store.
 */
export type AgentQuota = "agent-create" | "agent-update";
export const DEFAULT_AGENT_QUOTAS: TierTable<Record<AgentQuota, number | null>> = {
  free: { "agent-create": 5, "agent-update": 20 },
  pro: { "agent-create": 20, "agent-update": 100 },
  enterprise: { "agent-create": null, "agent-update": null },
};

/** GraphQL document limits (abuse protection), all configuration. */
export const DEFAULT_DOCUMENT_LIMITS = {
  maxCost: 1000,
  maxDepth: 10,
  maxAliases: 15,
  maxDirectives: 20,
  maxTokens: 2000,
  maxBatch: 5,
  /** Largest `first`/`last` of a connection (the pagination helpers enforce the same bound). */
  maxPageSize: 100,
  /** Assumed length of a list that takes no `first`/`last` (tokenPolicies, enrollmentKeys, …). */
  defaultListSize: 10,
  /** Weight of each root mutation field: a write costs more than a read. */
  mutationCost: 10,
};

/** How long each tier keeps a tenant's log at most (and by default), in days; null: unlimited. */
export const DEFAULT_RETENTION_DAYS: TierTable<number | null> = { free: 30, pro: 365, enterprise: null };
