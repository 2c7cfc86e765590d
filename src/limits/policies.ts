import type { AgentQuota, TierName } from "../config/limitDefaults.ts";
import type { Tier } from "../domain/tenant/events.ts";

// Configuration spells the tier names itself (it imports nothing of Keyplane's): they must stay the domain's.
const sameTiers: [Tier, TierName] extends [TierName, Tier] ? true : never = true;
void sameTiers;

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
  | "agent"
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
  tenant: {
    counts: "requests",
    keyedOn: "tenant id",
    windowSeconds: 60,
    limit: "the tenant's tier: RATE_LIMIT_REQUESTS_PER_MINUTE (free 60, pro 300, enterprise 1000)",
  },
  "tenant-burst": {
    counts: "requests",
    keyedOn: "tenant id",
    windowSeconds: 10,
    limit:
      "the tenant's tier: RATE_LIMIT_BURST_PER_10_SECONDS (default: the largest b with 7·b < 2·per-minute quota, so no 60-second span ever lets through twice the quota)",
  },
  principal: {
    counts: "requests",
    keyedOn: "tenant id + subject (a user, a service or an agent)",
    windowSeconds: 60,
    limit: "RATE_LIMIT_PRINCIPAL_PER_MINUTE (100)",
  },
  // An enrolled agent's requests, counted besides its principal's: the same subject, a limit of the
  // tenant's tier (the principal limit is one number for users, services and agents alike).
  agent: {
    counts: "requests",
    keyedOn: "tenant id + agent subject (agents only)",
    windowSeconds: 60,
    limit: "the tenant's tier: RATE_LIMIT_AGENT_PER_MINUTE (free 100, pro 100, enterprise 100)",
  },
  cost: {
    counts: "query cost",
    keyedOn: "tenant id",
    windowSeconds: 60,
    limit: "the tenant's tier: RATE_LIMIT_COST_PER_MINUTE (free 3000, pro 15000, enterprise 50000)",
  },
  anonymous: {
    counts: "requests",
    keyedOn: "source address",
    windowSeconds: 60,
    limit: "RATE_LIMIT_ANONYMOUS_PER_MINUTE (60): GraphQL operations without a token (enrollAgent, refreshSession)",
  },
  // Only refused keys count, and only refused keys are refused for it: a valid key enrolls whatever
  // others behind the same address tried (it is bounded by its own uses and the agent-create quota).
  enroll: {
    counts: "requests",
    keyedOn: "source address",
    windowSeconds: 60,
    limit: "ENROLL_ATTEMPTS_PER_MINUTE (10): refused enrollAgent attempts; past it further refused keys are answered RATE_LIMITED",
  },
  oauth: { counts: "requests", keyedOn: "source address", windowSeconds: 60, limit: "RATE_LIMIT_OAUTH_PER_MINUTE (30): /oauth/install and /oauth/callback" },
  webhooks: { counts: "requests", keyedOn: "source address", windowSeconds: 60, limit: "RATE_LIMIT_WEBHOOKS_PER_MINUTE (600): /webhooks/*" },
  // Refused credentials only ever refuse refused credentials: a request whose token verifies is never
  // asked about its address, so clients behind one NAT or proxy cannot lock each other out. A token
  // that verifies is not a guess (an ES256 signature, a 256-bit secret), so that costs no protection.
  "auth-failures": {
    counts: "failed authentications",
    keyedOn: "source address",
    windowSeconds: 60,
    limit:
      "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE (30): refused tokens, refresh tokens, enrollment keys and webhook signatures; past it the address's refused credentials are answered RATE_LIMITED (WebSocket 4029) until the window ends, while valid ones still pass",
  },
  // An export streams the whole log (a million events is over a gigabyte): a budget of its own, on
  // top of the request limits it also counts against.
  "audit-export": { counts: "exports", keyedOn: "tenant id", windowSeconds: 3600, limit: "RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR (20): GET /audit/export" },
};

export const AGENT_QUOTA_WINDOW_SECONDS: Record<AgentQuota, number> = { "agent-create": 86400, "agent-update": 3600 };
