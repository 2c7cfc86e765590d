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
  /** 1 while the shared limit store (Redis) is connected, 0 while this process counts alone. */
  rateLimitStoreUp: Gauge<"store">;
  /** WebSockets open now, and how the closed ones ended (4008 slow consumer, 4403 token, …). */
  websocketsOpen: Gauge;
  websocketCloses: Counter<"code">;
  /** graphql-ws messages sent, and the socket writes that carried them (frames of one turn share one). */
  websocketFrames: Counter;
  websocketWrites: Counter;
  /** tenantEvents subscribers following the live log on this process. */
  liveSubscribers: Gauge;
  /** route: a fixed set (src/http/httpMetrics.ts routeOf), never a raw path. */
  httpRequests: Counter<"method" | "route" | "status">;
  httpDuration: Histogram<"method" | "route">;
  /** Database round trips each HTTP request made (BEGIN and COMMIT included): its budget, watched. */
  httpDbRoundTrips: Histogram<"method" | "route">;
  /** operation: the client's operation name among the first names this process saw, else "other"; "anonymous" without one. */
  graphqlOperations: Counter<"type" | "operation" | "root_field" | "outcome">;
  graphqlDuration: Histogram<"type" | "operation">;
  /** Events appended, by event type (a fixed set: the event registry). Process-wide: see eventAppends. */
  eventAppends: Counter<"type">;
  /** Seconds from an event's commit to the live feed reading it for its subscribers (NOTIFY, else the fallback poll). */
  liveEventLag: Histogram;
  /** Database connections: state total | idle | waiting (clients queued for one) | max; read on scrape. */
  dbPool: Gauge<"state">;
  /** Age of the oldest event no signed audit checkpoint covers yet, over every tenant (0: all covered); read on scrape. */
  auditCheckpointAge: Gauge;
  /** Attempts at delivering a batch to a log stream: outcome delivered | retry | refused. */
  logStreamDeliveries: Counter<"kind" | "outcome">;
  /** Events log streams delivered (a redelivered batch counts again). */
  logStreamEvents: Counter<"kind">;
  logStreamDeliveryDuration: Histogram<"kind">;
  /** Active log streams of every tenant by health; read on scrape. */
  logStreams: Gauge<"health">;
  /** The largest lag of an active log stream, in events and in seconds; read on scrape. */
  logStreamLagEvents: Gauge;
  logStreamLagSeconds: Gauge;
  /** Events retention pruned (each behind a signed checkpoint), and the steps that did it, by outcome. */
  auditPrunedEvents: Counter;
  auditPruneSteps: Counter<"outcome">;
}

/**
 * Event appends are counted by the one write path (src/store/events/appendEvents.ts), which holds a
 * transaction, not a Keyplane: one counter per process, registered in every Keyplane's registry. A
 * process runs one Keyplane in production; tests read differences.
 */
export const eventAppends = new Counter({
  name: "keyplane_event_appends_total",
  help: "Events appended to the log, by event type",
  labelNames: ["type"],
  registers: [],
});

/** Counts events that an append returned (inside its transaction). */
export function countAppended(events: ReadonlyArray<{ type: string }>): void {
  for (const event of events) eventAppends.inc({ type: event.type });
}

/** Values read when Prometheus scrapes (gauges of things Keyplane does not count itself). */
export interface ScrapeSources {
  dbPool?: () => { total: number; idle?: number; waiting?: number; max: number } | undefined;
  /** Seconds; undefined when it cannot be read (the gauge keeps its last value). */
  auditCheckpointAge?: () => Promise<number | undefined>;
  /** Active log streams by health and their largest lags (one cached read serves the three gauges); undefined when it cannot be read. */
  logStreams?: () => Promise<LogStreamStats | undefined>;
}

export interface LogStreamStats {
  byHealth: Record<"pending" | "healthy" | "degraded" | "error", number>;
  maxLagEvents: number;
  maxLagSeconds: number;
}

/** Seconds: latency buckets of HTTP requests and GraphQL operations alike, so their panels line up. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

let processRegistry: Registry | undefined;
/**
 * Node.js's own metrics (CPU, memory, GC, event loop), collected once per process. Their collectors
 * live as long as the process (a GC observer, an event-loop histogram) and a metric holds on to its
 * registry: collected into each Keyplane's registry, they kept every closed Keyplane, its database
 * and (embedded) its PGlite memory alive, a few hundred MB each in a test worker.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: "keyplane_process_" });
  }
  return processRegistry;
}

export function createMetrics(options: { defaultMetrics?: boolean; scrape?: ScrapeSources } = {}): Metrics {
  const scrape = options.scrape ?? {};
  const own = new Registry();
  const registers = [own];
  const metrics: Metrics = {
    registry: own,
    githubTokenIssues: new Counter({
      name: "keyplane_github_token_issues_total",
      help: "GitHub installation token requests by app and outcome",
      labelNames: ["app", "outcome"],
      registers,
    }),
    githubTokenCacheHits: new Counter({
      name: "keyplane_github_token_cache_hits_total",
      help: "Token requests served from the per-process cache",
      labelNames: ["app"],
      registers,
    }),
    githubTokenRevocations: new Counter({
      name: "keyplane_github_token_revocations_total",
      help: "Issued GitHub tokens revoked, by reason",
      labelNames: ["app", "reason"],
      registers,
    }),
    githubUpstreamDuration: new Histogram({
      name: "keyplane_github_upstream_request_duration_seconds",
      help: "Latency of calls to the GitHub API",
      labelNames: ["app", "route", "status"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    githubUpstreamRequests: new Counter({
      name: "keyplane_github_upstream_requests_total",
      help: "Calls to the GitHub API by outcome",
      labelNames: ["app", "route", "outcome"],
      registers,
    }),
    githubRateLimitRemaining: new Gauge({
      name: "keyplane_github_rate_limit_remaining",
      help: "X-RateLimit-Remaining GitHub last reported, per installation (0 = app JWT calls)",
      labelNames: ["app", "installation"],
      registers,
    }),
    authFailures: new Counter({ name: "keyplane_auth_failures_total", help: "Refused credentials, by reason", labelNames: ["reason"], registers }),
    rateLimitRejections: new Counter({
      name: "keyplane_rate_limit_rejections_total",
      help: "Requests refused by a rate-limit policy, by policy",
      labelNames: ["policy"],
      registers,
    }),
    rateLimitStoreFallbacks: new Counter({
      name: "keyplane_rate_limit_store_fallbacks_total",
      help: "Counts taken in process memory because the shared rate-limit store failed or timed out",
      labelNames: ["store"],
      registers,
    }),
    rateLimitStoreUp: new Gauge({
      name: "keyplane_rate_limit_store_up",
      help: "1 while the shared rate-limit store (Redis) is connected; 0 while this process counts alone (the insurance limiter)",
      labelNames: ["store"],
      registers,
    }),
    websocketsOpen: new Gauge({ name: "keyplane_websockets_open", help: "graphql-ws sockets open on this process", registers }),
    websocketFrames: new Counter({ name: "keyplane_websocket_frames_total", help: "graphql-ws messages sent by this process", registers }),
    websocketWrites: new Counter({
      name: "keyplane_websocket_writes_total",
      help: "Socket writes carrying graphql-ws messages (the messages of one event-loop turn to one socket share one)",
      registers,
    }),
    websocketCloses: new Counter({
      name: "keyplane_websocket_closes_total",
      help: "graphql-ws sockets closed, by close code",
      labelNames: ["code"],
      registers,
    }),
    liveSubscribers: new Gauge({ name: "keyplane_live_subscribers", help: "Subscribers following a tenant's live log on this process", registers }),
    httpRequests: new Counter({
      name: "keyplane_http_requests_total",
      help: "HTTP requests answered, by method, route and status",
      labelNames: ["method", "route", "status"],
      registers,
    }),
    httpDuration: new Histogram({
      name: "keyplane_http_request_duration_seconds",
      help: "Time from an HTTP request's arrival to the end of its response (subscriptions over SSE: their lifetime)",
      labelNames: ["method", "route"],
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    httpDbRoundTrips: new Histogram({
      name: "keyplane_http_db_round_trips",
      help: "Database round trips made for one HTTP request (BEGIN and COMMIT included), by method and route",
      labelNames: ["method", "route"],
      buckets: [0, 1, 2, 3, 4, 5, 7, 10, 20, 50, 100],
      registers,
    }),
    graphqlOperations: new Counter({
      name: "keyplane_graphql_operations_total",
      help: "GraphQL operations executed (subscriptions: started), by type, operation name, first root field and outcome (ok or the first error's code)",
      labelNames: ["type", "operation", "root_field", "outcome"],
      registers,
    }),
    graphqlDuration: new Histogram({
      name: "keyplane_graphql_operation_duration_seconds",
      help: "Execution time of GraphQL queries and mutations, by type and operation name",
      labelNames: ["type", "operation"],
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    eventAppends: registered(eventAppends, own),
    liveEventLag: new Histogram({
      name: "keyplane_live_event_lag_seconds",
      help: "Seconds from an event's commit to the live feed reading it for its subscribers",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    dbPool: new Gauge({
      name: "keyplane_db_pool_connections",
      help: "Database connections of this process: total, idle, waiting (clients queued for one) and max (the embedded database: one, total and max only)",
      labelNames: ["state"],
      registers,
      collect() {
        const stats = scrape.dbPool?.();
        for (const state of ["total", "idle", "waiting", "max"] as const) {
          const value = stats?.[state];
          if (value !== undefined) this.set({ state }, value);
        }
      },
    }),
    auditCheckpointAge: new Gauge({
      name: "keyplane_audit_checkpoint_oldest_unsigned_seconds",
      help: "Age of the oldest event not yet covered by a signed audit checkpoint, over every tenant (0 when all are)",
      registers,
      async collect() {
        const age = await scrape.auditCheckpointAge?.();
        if (age !== undefined) this.set(age);
      },
    }),
    auditPrunedEvents: new Counter({
      name: "keyplane_audit_pruned_events_total",
      help: "Events retention removed from tenants' logs, each range behind a signed checkpoint (and archived first where AUDIT_ARCHIVE_DIR is set)",
      registers,
    }),
    auditPruneSteps: new Counter({
      name: "keyplane_audit_prune_steps_total",
      help: "Prune steps (one range from checkpoint to checkpoint, one transaction), by outcome: pruned | failed",
      labelNames: ["outcome"],
      registers,
    }),
    logStreamDeliveries: new Counter({
      name: "keyplane_log_stream_deliveries_total",
      help: "Attempts at delivering a batch of events to a log stream, by kind and outcome (delivered, retry, refused)",
      labelNames: ["kind", "outcome"],
      registers,
    }),
    logStreamEvents: new Counter({
      name: "keyplane_log_stream_events_delivered_total",
      help: "Events delivered to log streams by this process (a redelivered batch counts again)",
      labelNames: ["kind"],
      registers,
    }),
    logStreamDeliveryDuration: new Histogram({
      name: "keyplane_log_stream_delivery_duration_seconds",
      help: "Time from sending a batch to a log stream to its answer",
      labelNames: ["kind"],
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    logStreams: new Gauge({
      name: "keyplane_log_streams",
      help: "Active log streams of every tenant, by health (pending, healthy, degraded, error)",
      labelNames: ["health"],
      registers,
      async collect() {
        const stats = await scrape.logStreams?.();
        if (stats) for (const [health, count] of Object.entries(stats.byHealth)) this.set({ health }, count);
      },
    }),
    logStreamLagEvents: new Gauge({
      name: "keyplane_log_stream_lag_max_events",
      help: "The most events an active log stream has not delivered yet",
      registers,
      async collect() {
        const stats = await scrape.logStreams?.();
        if (stats) this.set(stats.maxLagEvents);
      },
    }),
    logStreamLagSeconds: new Gauge({
      name: "keyplane_log_stream_lag_max_seconds",
      help: "The age of the oldest event an active log stream has not delivered yet (0: all caught up)",
      registers,
      async collect() {
        const stats = await scrape.logStreams?.();
        if (stats) this.set(stats.maxLagSeconds);
      },
    }),
  };
  // The scrape sees both (merged once every metric exists); the process metrics never point back
  // at this Keyplane's registry.
  if (options.defaultMetrics) metrics.registry = Registry.merge([processMetrics(), own]);
  return metrics;
}

function registered<T extends Counter<string>>(metric: T, registry: Registry): T {
  registry.registerMetric(metric);
  return metric;
}
