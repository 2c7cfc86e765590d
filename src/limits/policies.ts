import type { Tier } from "../domain/tenant/events.ts";

/**
 * Keyplane's named limit policies, in one place: what each counts, what it is keyed on, over which
 * window, and where its number comes from. The numbers are configuration (src/config.ts) with the
 * product's defaults below; this file is the catalogue the rest of the code and the README name.
 *
 * Every counter is a fixed window in the shared store (src/limits/limitStore.ts): memory for one
 * process, Redis or PostgreSQL when several share the work. A request is refused when a counter's
 * count in its window passes the policy's limit; the refusal says when the window ends (Retry-After).
 */
export type PolicyName =
  | "tenant"
  | "tenant-burst"
  | "principal"
  | "cost"
  | "anonymous"
  | "enroll"
  | "oauth"
  | "webhooks"
  | "auth-failures"
  | "audit-export";

export interface PolicyDefinition {
  /** What one unit is. */
  counts: "requests" | "query cost" | "failed authentications" | "exports";
  /** What the counter is keyed on. */
  keyedOn: string;
  /** Window in seconds. */
  windowSeconds: number;
  /** Where the limit comes from. */
  limit: string;
}

export const POLICIES: Record<PolicyName, PolicyDefinition> = {
  tenant: { counts: "requests", keyedOn: "tenant id", windowSeconds: 60, limit: "the tenant's tier: RATE_LIMIT_REQUESTS_PER_MINUTE (free 60, pro 300, enterprise 1000)" },
  "tenant-burst": {
    counts: "requests",
    keyedOn: "tenant id",
    windowSeconds: 10,
    limit: "the tenant's tier: RATE_LIMIT_BURST_PER_10_SECONDS (default: the largest b with 7·b < 2·per-minute quota, so no 60-second span ever lets through twice the quota)",
  },
  principal: { counts: "requests", keyedOn: "tenant id + subject (a user, a service or an agent)", windowSeconds: 60, limit: "RATE_LIMIT_PRINCIPAL_PER_MINUTE (100)" },
  cost: { counts: "query cost", keyedOn: "tenant id", windowSeconds: 60, limit: "the tenant's tier: RATE_LIMIT_COST_PER_MINUTE (free 3000, pro 15000, enterprise 50000)" },
  anonymous: { counts: "requests", keyedOn: "source address", windowSeconds: 60, limit: "RATE_LIMIT_ANONYMOUS_PER_MINUTE (60): GraphQL operations without a token (enrollAgent, refreshSession)" },
  // Only refused keys count, and only refused keys are refused for it: a valid key enrolls whatever
  // others behind the same address tried (it is bounded by its own uses and the agent-create quota).
  enroll: { counts: "requests", keyedOn: "source address", windowSeconds: 60, limit: "ENROLL_ATTEMPTS_PER_MINUTE (10): refused enrollAgent attempts; past it further refused keys are answered RATE_LIMITED" },
  oauth: { counts: "requests", keyedOn: "source address", windowSeconds: 60, limit: "RATE_LIMIT_OAUTH_PER_MINUTE (30): /oauth/install and /oauth/callback" },
  webhooks: { counts: "requests", keyedOn: "source address", windowSeconds: 60, limit: "RATE_LIMIT_WEBHOOKS_PER_MINUTE (600): /webhooks/*" },
  // Refused credentials only ever refuse refused credentials: a request whose token verifies is never
  // asked about its address, so clients behind one NAT or proxy cannot lock each other out. A token
  // that verifies is not a guess (an ES256 signature, a 256-bit secret), so that costs no protection.
  "auth-failures": {
    counts: "failed authentications",
    keyedOn: "source address",
    windowSeconds: 60,
    limit: "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE (30): refused tokens, refresh tokens, enrollment keys and webhook signatures; past it the address's refused credentials are answered RATE_LIMITED (WebSocket 4029) until the window ends, while valid ones still pass",
  },
  // An export streams the whole log (a million events is over a gigabyte): a budget of its own, on
  // top of the request limits it also counts against.
  "audit-export": { counts: "exports", keyedOn: "tenant id", windowSeconds: 3600, limit: "RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR (20): GET /audit/export" },
};

export type TierTable<T = number> = Record<Tier, T>;

/** API requests per minute per tenant (the product's tier table). */
export const DEFAULT_REQUESTS_PER_MINUTE: TierTable = { free: 60, pro: 300, enterprise: 1000 };
/** Query cost a tenant may spend per minute. */
export const DEFAULT_COST_PER_MINUTE: TierTable = { free: 3000, pro: 15000, enterprise: 50000 };
export const DEFAULT_PRINCIPAL_PER_MINUTE = 100;
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
export const AGENT_QUOTA_WINDOW_SECONDS: Record<AgentQuota, number> = { "agent-create": 86400, "agent-update": 3600 };

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

/** The resolved numbers: what Config.limits holds. */
export interface LimitsConfig {
  /** Off: no request, cost-budget or per-address counting (document limits and agent quotas stay). */
  enabled: boolean;
  /**
   * Not configuration: false builds the GraphQL server without any of these plugins (document
   * limits, cost, request limits), the baseline `npm run bench:limits` measures against.
   */
  protections?: boolean;
  store: "memory" | "redis" | "database";
  redisUrl?: string;
  /** A shared store slower than this is skipped for the in-memory insurance limiter. */
  storeTimeoutMs: number;
  requestsPerMinute: TierTable;
  burstPer10Seconds: TierTable;
  costPerMinute: TierTable;
  principalPerMinute: number;
  anonymousPerMinute: number;
  enrollPerMinute: number;
  oauthPerMinute: number;
  webhooksPerMinute: number;
  authFailuresPerMinute: number;
  auditExportsPerHour: number;
  agentQuotas: TierTable<Record<AgentQuota, number | null>>;
  document: typeof DEFAULT_DOCUMENT_LIMITS & {
    introspection: boolean;
    fieldSuggestions: boolean;
    persistedOnly: boolean;
    persistedFile?: string;
  };
}
