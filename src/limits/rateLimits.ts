import { PLATFORM_TENANT, type Actor, type RequestMeta } from "../auth/actor.ts";
import type { Tier } from "../domain/tenant/events.ts";
import { DomainError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import type { Db } from "../store/db.ts";
import type { SecurityRecorder } from "../app/recordSecurityEvent.ts";
import { createLimitStore, type Counter, type LimitStore } from "./limitStore.ts";
import type { LimitsConfig } from "../config.ts";
import { POLICIES, type PolicyName } from "./policies.ts";

/** One policy's verdict on one request. */
export interface PolicyCheck {
  policy: PolicyName;
  limit: number;
  windowSeconds: number;
  /** Units left in the window after this request (0 when refused). */
  remaining: number;
  /** Seconds until the window ends. */
  resetSeconds: number;
  limited: boolean;
}

/** Every policy that looked at a request, and the one that refused it (the longest wait), if any. */
export interface Decision {
  checks: PolicyCheck[];
  refused?: PolicyCheck;
}

export type AddressPolicy = "anonymous" | "enroll" | "oauth" | "webhooks";

export interface RateLimits {
  readonly enabled: boolean;
  readonly config: LimitsConfig;
  readonly storeKind: LimitStore["kind"];
  /**
   * Counts one API request: an authenticated principal's against its tenant's burst and tier limit
   * and its own limit (an agent's also against its tier's agent limit); an anonymous one against its
   * source address. Refusals are recorded.
   */
  checkRequest(actor: Actor | null, tier: Tier | undefined, meta: RequestMeta): Promise<Decision>;
  /** Charges an operation's cost to its tenant's budget of the minute. */
  chargeCost(actor: Actor, tier: Tier | undefined, cost: number, meta: RequestMeta): Promise<Decision>;
  /** An audit export: a request of its principal and tenant, and one of the tenant's exports of the hour. */
  checkAuditExport(actor: Actor, tier: Tier | undefined, meta: RequestMeta): Promise<Decision>;
  /** A per-address policy of a public endpoint. */
  checkAddress(policy: AddressPolicy, meta: RequestMeta, actor?: Actor | null): Promise<Decision>;
  /**
   * A refused credential from this address (called for every auth.failed security event): counted
   * in the shared store. Resolves once counted (never rejects), so the request that was refused can
   * be answered with refusedCredential's verdict at once.
   */
  noteAuthFailure(sourceIp: string | undefined): Promise<void>;
  /**
   * For a request whose credential was just refused, and only for one: RATE_LIMITED (policy
   * auth-failures, recorded as access.denied) when its address has had more refused credentials
   * than the limit in the current window. A request whose credential verifies never asks, so it is
   * never refused for what other clients behind the same address (a NAT, an unlisted proxy) did.
   */
  refusedCredential(meta: RequestMeta): Promise<Decision | undefined>;
  /** A tenant's requests and query cost in the current minute, against its tier's limits (counting nothing). */
  tenantUsage(tenantId: string, tier: Tier): Promise<Record<"requests" | "cost", WindowUsage>>;
  close(): Promise<void>;
}

/** How much of a limit a window has used. */
export interface WindowUsage {
  used: number;
  /** null: unlimited. */
  limit: number | null;
  windowSeconds: number;
  /** Seconds until the window ends (0: no window open). */
  resetSeconds: number;
}

const NO_DECISION: Decision = { checks: [] };

export function createRateLimits(deps: { config: LimitsConfig; db: Db; logger: Logger; metrics?: Metrics; security: SecurityRecorder }): RateLimits {
  const config = deps.config;
  const store = createLimitStore(config, deps);
  const counters = new Map<PolicyName, Counter>();
  const counter = (policy: PolicyName) => {
    let c = counters.get(policy);
    if (!c) counters.set(policy, (c = store.counter(policy, POLICIES[policy].windowSeconds)));
    return c;
  };
  const blocked = new Map<string, number>();

  async function check(policy: PolicyName, key: string, limit: number, points = 1): Promise<PolicyCheck> {
    const windowSeconds = POLICIES[policy].windowSeconds;
    const state = await counter(policy).hit(key, points);
    const limited = state.consumed > limit;
    return {
      policy,
      limit,
      windowSeconds,
      remaining: Math.max(0, limit - state.consumed),
      resetSeconds: Math.max(limited ? 1 : 0, Math.ceil(state.msBeforeNext / 1000)),
      limited,
    };
  }

  async function decide(checks: PolicyCheck[], actor: Actor | null, meta: RequestMeta): Promise<Decision> {
    let refused: PolicyCheck | undefined;
    for (const c of checks) if (c.limited && (!refused || c.resetSeconds > refused.resetSeconds)) refused = c;
    if (refused) {
      deps.metrics?.rateLimitRejections.inc({ policy: refused.policy });
      // Sampled by the recorder: one event per tenant (or address), policy and principal a minute
      // (the others return at once); recording never fails the request.
      await deps.security.accessDenied({
        tenantId: actor && actor.tenantId !== PLATFORM_TENANT ? actor.tenantId : null,
        actor,
        reason: `rate-limit:${refused.policy}`,
        resource: "api",
        action: "request",
        details: { policy: refused.policy, limit: refused.limit, windowSeconds: refused.windowSeconds, retryAfter: refused.resetSeconds },
        request: meta,
      });
    }
    return { checks, refused };
  }

  const tierOf = (actor: Actor, tier: Tier | undefined): Tier => (actor.tenantId === PLATFORM_TENANT ? "enterprise" : (tier ?? "free"));

  return {
    enabled: config.enabled,
    config,
    storeKind: store.kind,
    async checkRequest(actor, tier, meta) {
      if (!config.enabled) return NO_DECISION;
      if (!actor) return this.checkAddress("anonymous", meta, null);
      const t = tierOf(actor, tier);
      // The burst cap first: a request it refuses does not eat into the minute's quota.
      const burst = await check("tenant-burst", actor.tenantId, config.burstPer10Seconds[t]);
      if (burst.limited) return decide([burst], actor, meta);
      const principalKey = `${actor.tenantId}:${actor.subject}`;
      // An agent's own limit sits before its principal's: with equal limits (the default) and
      // windows opened by the same request, a refusal names the agent policy.
      const [tenant, ...own] = await Promise.all([
        check("tenant", actor.tenantId, config.requestsPerMinute[t]),
        ...(actor.kind === "agent" ? [check("agent", principalKey, config.agentPerMinute[t])] : []),
        check("principal", principalKey, config.principalPerMinute),
      ]);
      return decide([tenant, burst, ...own], actor, meta);
    },
    async tenantUsage(tenantId, tier) {
      const peek = async (policy: "tenant" | "cost", limit: number): Promise<WindowUsage> => {
        const state = config.enabled ? await counter(policy).peek(tenantId) : { consumed: 0, msBeforeNext: 0 };
        return { used: state.consumed, limit, windowSeconds: POLICIES[policy].windowSeconds, resetSeconds: Math.ceil(state.msBeforeNext / 1000) };
      };
      const [requests, cost] = await Promise.all([peek("tenant", config.requestsPerMinute[tier]), peek("cost", config.costPerMinute[tier])]);
      return { requests, cost };
    },
    async chargeCost(actor, tier, cost, meta) {
      if (!config.enabled) return NO_DECISION;
      const budget = config.costPerMinute[tierOf(actor, tier)];
      const points = Math.max(0, Math.round(cost));
      const charged = await check("cost", actor.tenantId, budget, points);
      // An operation refused for its cost does not run, so it spends nothing: its points go back.
      if (charged.limited && points > 0) {
        await counter("cost")
          .refund(actor.tenantId, points)
          .catch((error: unknown) => deps.logger.warn({ err: error }, "could not refund a refused operation's cost"));
      }
      return decide([charged], actor, meta);
    },
    async checkAuditExport(actor, tier, meta) {
      if (!config.enabled) return NO_DECISION;
      const request = await this.checkRequest(actor, tier, meta);
      if (request.refused) return request;
      return decide([...request.checks, await check("audit-export", actor.tenantId, config.auditExportsPerHour)], actor, meta);
    },
    async checkAddress(policy, meta, actor = null) {
      if (!config.enabled && policy !== "enroll") return NO_DECISION;
      const limit = { anonymous: config.anonymousPerMinute, enroll: config.enrollPerMinute, oauth: config.oauthPerMinute, webhooks: config.webhooksPerMinute }[
        policy
      ];
      return decide([await check(policy, meta.sourceIp ?? "unknown", limit)], actor, meta);
    },
    async noteAuthFailure(sourceIp) {
      if (!config.enabled) return;
      const ip = sourceIp ?? "unknown";
      try {
        const state = await counter("auth-failures").hit(ip);
        if (state.consumed <= config.authFailuresPerMinute) return;
        // Over the limit in the shared count: this process refuses the address's refused
        // credentials until the window ends (each further one is counted here again first).
        if (blocked.size > 10_000) for (const [k, until] of blocked) if (until <= Date.now()) blocked.delete(k);
        blocked.set(ip, Date.now() + Math.max(1000, state.msBeforeNext));
      } catch (error) {
        deps.logger.warn({ err: error }, "could not count a failed authentication");
      }
    },
    async refusedCredential(meta) {
      if (!config.enabled) return undefined;
      const ip = meta.sourceIp ?? "unknown";
      const until = blocked.get(ip);
      if (until === undefined) return undefined;
      const ms = until - Date.now();
      if (ms <= 0) {
        blocked.delete(ip);
        return undefined;
      }
      const check: PolicyCheck = {
        policy: "auth-failures",
        limit: config.authFailuresPerMinute,
        windowSeconds: POLICIES["auth-failures"].windowSeconds,
        remaining: 0,
        resetSeconds: Math.ceil(ms / 1000),
        limited: true,
      };
      return decide([check], null, meta);
    },
    close: () => store.close(),
  };
}

const MESSAGES: Record<PolicyName, string> = {
  tenant: "this tenant's requests per minute are used up",
  "tenant-burst": "too many requests within ten seconds for this tenant",
  principal: "this principal's requests per minute are used up",
  agent: "this agent's requests per minute are used up",
  cost: "this tenant's query cost budget for the minute is used up",
  anonymous: "too many unauthenticated requests from this address",
  enroll: "too many enrollment attempts from this address",
  oauth: "too many installation requests from this address",
  webhooks: "too many webhook deliveries from this address",
  "auth-failures": "too many failed authentications from this address",
  "audit-export": "this tenant's audit exports for the hour are used up",
};

/** The caller's error for a refusal: RATE_LIMITED with retryAfter (seconds) and the policy's name. */
export function rateLimitedError(refused: PolicyCheck): DomainError {
  return new DomainError("RATE_LIMITED", `${MESSAGES[refused.policy]}; retry in ${refused.resetSeconds} s`, {
    retryAfter: refused.resetSeconds,
    policy: refused.policy,
    limit: refused.limit,
  });
}

/**
 * The IETF httpapi RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11): `RateLimit-Policy`
 * lists each policy that counted the request (`"tenant";q=300;w=60`), `RateLimit` its state now
 * (`"tenant";r=123;t=45`). The cost policy counts query cost, not requests, and says so in a
 * Keyplane parameter (the draft's `qu` registry has no unit for it).
 */
export function rateLimitHeaders(checks: PolicyCheck[]): Record<string, string> {
  if (checks.length === 0) return {};
  // The operations of a batch each charge the cost policy: the last charge is the current state.
  const unique = [...new Map(checks.map((c) => [c.policy, c])).values()];
  const unit = (c: PolicyCheck) => (c.policy === "cost" ? ';keyplane-unit="query-cost"' : "");
  const headers: Record<string, string> = {
    "RateLimit-Policy": unique.map((c) => `"${c.policy}";q=${c.limit};w=${c.windowSeconds}${unit(c)}`).join(", "),
    RateLimit: unique.map((c) => `"${c.policy}";r=${c.remaining};t=${c.resetSeconds}`).join(", "),
  };
  const refused = unique.filter((c) => c.limited).sort((a, b) => b.resetSeconds - a.resetSeconds)[0];
  if (refused) headers["Retry-After"] = String(refused.resetSeconds);
  return headers;
}
