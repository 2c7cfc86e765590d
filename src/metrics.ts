import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * Keyplane's Prometheus metrics, one registry per Keyplane (tests run several in one process).
 * Served at /metrics. Labels are bounded sets: app names, outcome codes, installation ids.
 */
export interface Metrics {
  registry: Registry;
  /** outcome: issued | cached | forbidden | not_found | bad_input | rate_limited | upstream_error | ... */
  githubTokenIssues: Counter<"app" | "outcome">;
  githubTokenCacheHits: Counter<"app">;
  githubTokenRevocations: Counter<"app" | "reason">;
  /** route is the URL template (e.g. POST /app/installations/{installation_id}/access_tokens), never a filled URL. */
  githubUpstreamDuration: Histogram<"app" | "route" | "status">;
  githubUpstreamRequests: Counter<"app" | "route" | "outcome">;
  githubRateLimitRemaining: Gauge<"app" | "installation">;
  authFailures: Counter<"reason">;
  /** policy: a name of src/limits/policies.ts (tenant, tenant-burst, principal, cost, anonymous, …). */
  rateLimitRejections: Counter<"policy">;
  /** Counts taken by the in-memory insurance limiter because the shared store failed or was slow. */
  rateLimitStoreFallbacks: Counter<"store">;
  /** WebSockets open now, and how the closed ones ended (4008 slow consumer, 4403 token, …). */
  websocketsOpen: Gauge;
  websocketCloses: Counter<"code">;
  /** tenantEvents subscribers following the live log on this process. */
  liveSubscribers: Gauge;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "keyplane_process_" });
  const registers = [registry];
  return {
    registry,
    githubTokenIssues: new Counter({ name: "keyplane_github_token_issues_total", help: "GitHub installation token requests by app and outcome", labelNames: ["app", "outcome"], registers }),
    githubTokenCacheHits: new Counter({ name: "keyplane_github_token_cache_hits_total", help: "Token requests served from the per-process cache", labelNames: ["app"], registers }),
    githubTokenRevocations: new Counter({ name: "keyplane_github_token_revocations_total", help: "Issued GitHub tokens revoked, by reason", labelNames: ["app", "reason"], registers }),
    githubUpstreamDuration: new Histogram({
      name: "keyplane_github_upstream_request_duration_seconds",
      help: "Latency of calls to the GitHub API",
      labelNames: ["app", "route", "status"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    githubUpstreamRequests: new Counter({ name: "keyplane_github_upstream_requests_total", help: "Calls to the GitHub API by outcome", labelNames: ["app", "route", "outcome"], registers }),
    githubRateLimitRemaining: new Gauge({ name: "keyplane_github_rate_limit_remaining", help: "X-RateLimit-Remaining GitHub last reported, per installation (0 = app JWT calls)", labelNames: ["app", "installation"], registers }),
    authFailures: new Counter({ name: "keyplane_auth_failures_total", help: "Refused credentials, by reason", labelNames: ["reason"], registers }),
    rateLimitRejections: new Counter({ name: "keyplane_rate_limit_rejections_total", help: "Requests refused by a rate-limit policy, by policy", labelNames: ["policy"], registers }),
    rateLimitStoreFallbacks: new Counter({ name: "keyplane_rate_limit_store_fallbacks_total", help: "Counts taken in process memory because the shared rate-limit store failed or timed out", labelNames: ["store"], registers }),
    websocketsOpen: new Gauge({ name: "keyplane_websockets_open", help: "graphql-ws sockets open on this process", registers }),
    websocketCloses: new Counter({ name: "keyplane_websocket_closes_total", help: "graphql-ws sockets closed, by close code", labelNames: ["code"], registers }),
    liveSubscribers: new Gauge({ name: "keyplane_live_subscribers", help: "Subscribers following a tenant's live log on this process", registers }),
  };
}
