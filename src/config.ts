import { isIP } from "node:net";
import type { z } from "zod";
import {
  DEFAULT_AGENT_PER_MINUTE,
  DEFAULT_AGENT_QUOTAS,
  DEFAULT_COST_PER_MINUTE,
  DEFAULT_DOCUMENT_LIMITS,
  DEFAULT_REQUESTS_PER_MINUTE,
  DEFAULT_RETENTION_DAYS,
  defaultBurstPer10Seconds,
  type TierTable,
} from "./config/limitDefaults.ts";
import { EnvSchema, type Env } from "./config/variables.ts";

// The only reader of process.env: everything else receives a typed Config. The variables, their
// defaults and meanings are declared once, in src/config/variables.ts; the Config type is what the
// schema below produces. This module imports nothing of Keyplane's but its own folder: everything may
// depend on it.
export type { Env };

export class ConfigError extends Error {}

/** The environment, parsed and checked, as the typed configuration. */
const ConfigSchema = EnvSchema.transform(configOf);
export type Config = z.output<typeof ConfigSchema>;
export type LimitsConfig = Config["limits"];
export type GitHubAppsConfig = Config["githubApps"];
export type ProvidersConfig = Config["providers"];
export type SlackConfig = NonNullable<ProvidersConfig["slack"]>;
export type JiraConfig = NonNullable<ProvidersConfig["jira"]>;

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}

function configOf(e: Env) {
  // GitHub Apps are validated, named and read by src/github/appRegistry.ts from config.githubApps.
  requireTogether(["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"], e);
  requireTogether(["ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET"], e);
  const publicUrl = (e.KEYPLANE_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, "");
  const list = (value: string, separator: RegExp) =>
    value
      .split(separator)
      .map((s) => s.trim())
      .filter(Boolean);
  const externalParts = [e.AUTH_JWKS_URL, e.AUTH_ISSUER, e.AUTH_AUDIENCE];
  if (externalParts.some(Boolean) && !externalParts.every(Boolean)) {
    throw new ConfigError("invalid configuration: AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE must be set together");
  }
  if (e.GRAPHQL_PERSISTED_OPERATIONS_ONLY === "true" && !e.GRAPHQL_PERSISTED_OPERATIONS_FILE) {
    throw new ConfigError("invalid configuration: GRAPHQL_PERSISTED_OPERATIONS_ONLY needs GRAPHQL_PERSISTED_OPERATIONS_FILE");
  }
  if (e.RATE_LIMIT_STORE === "redis" && !e.REDIS_URL) throw new ConfigError("invalid configuration: RATE_LIMIT_STORE=redis needs REDIS_URL");
  const requestsPerMinute = tierTable("RATE_LIMIT_REQUESTS_PER_MINUTE", e.RATE_LIMIT_REQUESTS_PER_MINUTE, DEFAULT_REQUESTS_PER_MINUTE);
  const derivedBurst: TierTable = {
    free: defaultBurstPer10Seconds(requestsPerMinute.free),
    pro: defaultBurstPer10Seconds(requestsPerMinute.pro),
    enterprise: defaultBurstPer10Seconds(requestsPerMinute.enterprise),
  };
  const quotaOf = (name: string, value: string | undefined, key: "agent-create" | "agent-update") =>
    tierTable(
      name,
      value,
      { free: DEFAULT_AGENT_QUOTAS.free[key], pro: DEFAULT_AGENT_QUOTAS.pro[key], enterprise: DEFAULT_AGENT_QUOTAS.enterprise[key] },
      true,
    );
  const creates = quotaOf("AGENT_CREATES_PER_DAY", e.AGENT_CREATES_PER_DAY, "agent-create");
  const updates = quotaOf("AGENT_UPDATES_PER_HOUR", e.AGENT_UPDATES_PER_HOUR, "agent-update");
  const store: NonNullable<Env["RATE_LIMIT_STORE"]> = e.RATE_LIMIT_STORE ?? (e.REDIS_URL ? "redis" : e.DATABASE_URL ? "database" : "memory");
  const limits = {
    // On in production; elsewhere on request (a developer's or a test's bursts are not abuse).
    enabled: (e.RATE_LIMITS ?? (e.NODE_ENV === "production" ? "on" : "off")) === "on",
    /** Not configuration: false builds the GraphQL server without any of the limit plugins, the baseline `npm run bench:limits` measures against. */
    protections: true as boolean,
    store,
    redisUrl: e.REDIS_URL,
    storeTimeoutMs: e.RATE_LIMIT_STORE_TIMEOUT_MS,
    requestsPerMinute,
    burstPer10Seconds: tierTable("RATE_LIMIT_BURST_PER_10_SECONDS", e.RATE_LIMIT_BURST_PER_10_SECONDS, derivedBurst),
    costPerMinute: tierTable("RATE_LIMIT_COST_PER_MINUTE", e.RATE_LIMIT_COST_PER_MINUTE, DEFAULT_COST_PER_MINUTE),
    principalPerMinute: e.RATE_LIMIT_PRINCIPAL_PER_MINUTE,
    agentPerMinute: tierTable("RATE_LIMIT_AGENT_PER_MINUTE", e.RATE_LIMIT_AGENT_PER_MINUTE, DEFAULT_AGENT_PER_MINUTE),
    anonymousPerMinute: e.RATE_LIMIT_ANONYMOUS_PER_MINUTE,
    enrollPerMinute: e.ENROLL_ATTEMPTS_PER_MINUTE,
    oauthPerMinute: e.RATE_LIMIT_OAUTH_PER_MINUTE,
    webhooksPerMinute: e.RATE_LIMIT_WEBHOOKS_PER_MINUTE,
    authFailuresPerMinute: e.RATE_LIMIT_AUTH_FAILURES_PER_MINUTE,
    auditExportsPerHour: e.RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR,
    agentQuotas: {
      free: { "agent-create": creates.free, "agent-update": updates.free },
      pro: { "agent-create": creates.pro, "agent-update": updates.pro },
      enterprise: { "agent-create": creates.enterprise, "agent-update": updates.enterprise },
    },
    document: {
      ...DEFAULT_DOCUMENT_LIMITS,
      maxCost: e.GRAPHQL_MAX_COST,
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxBatch: e.GRAPHQL_MAX_BATCH,
      // Production hides the schema: no introspection, no "Did you mean …?" in errors.
      introspection: e.GRAPHQL_INTROSPECTION ? e.GRAPHQL_INTROSPECTION === "true" : e.NODE_ENV !== "production",
      fieldSuggestions: e.NODE_ENV !== "production",
      persistedOnly: e.GRAPHQL_PERSISTED_OPERATIONS_ONLY === "true",
      persistedFile: e.GRAPHQL_PERSISTED_OPERATIONS_FILE,
    },
  };
  const githubAppEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(e)) {
    if (name.startsWith("GITHUB_APP_") && typeof value === "string" && value !== "") githubAppEnv[name] = value;
  }
  return {
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    database: { url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX, connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS },
    dataDir: e.KEYPLANE_DATA_DIR,
    // The embedded database belongs to this process, so it is always migrated; a shared one only on request.
    migrateOnStart: e.KEYPLANE_MIGRATE_ON_START ? e.KEYPLANE_MIGRATE_ON_START === "true" : !e.DATABASE_URL,
    publicUrl,
    auth: {
      issuer: e.KEYPLANE_ISSUER,
      audience: e.KEYPLANE_AUDIENCE,
      signingKey: e.KEYPLANE_SIGNING_KEY,
      previousSigningKeys: e.KEYPLANE_PREVIOUS_SIGNING_KEYS,
      external: e.AUTH_JWKS_URL ? { jwksUrl: e.AUTH_JWKS_URL, issuer: e.AUTH_ISSUER!, audience: e.AUTH_AUDIENCE! } : undefined,
      cacheRevalidateMs: e.AUTH_CACHE_REVALIDATE_MS,
      userTokenTtl: e.USER_TOKEN_TTL_SECONDS,
      serviceTokenTtl: e.SERVICE_TOKEN_TTL_SECONDS,
      refreshTokenTtl: e.REFRESH_TOKEN_TTL_SECONDS,
    },
    maxBodyBytes: e.MAX_BODY_BYTES,
    trustedProxies: trustedProxiesOf(e.TRUSTED_PROXIES),
    corsOrigins: corsOriginsOf(e.CORS_ORIGINS),
    /** `id:base64key,…`, first is current; unset means a key generated once into the data dir. */
    encryptionKeys: e.KEYPLANE_ENCRYPTION_KEYS,
    installations: {
      successUrl: e.OAUTH_SUCCESS_URL,
      stateTtlSeconds: e.OAUTH_STATE_TTL_SECONDS,
      webhookMaxBodyBytes: e.WEBHOOK_MAX_BODY_BYTES,
      refreshIntervalSeconds: e.CREDENTIAL_REFRESH_INTERVAL_SECONDS,
      refreshWindowSeconds: e.CREDENTIAL_REFRESH_WINDOW_SECONDS,
    },
    limits,
    agents: {
      offlineAfterSeconds: e.AGENT_OFFLINE_AFTER,
      sweepIntervalSeconds: e.AGENT_SWEEP_INTERVAL_SECONDS,
      enrollAttemptsPerMinute: e.ENROLL_ATTEMPTS_PER_MINUTE,
      ephemeralGraceSeconds: e.AGENT_EPHEMERAL_GRACE_SECONDS,
    },
    audit: {
      checkpointIntervalSeconds: e.AUDIT_CHECKPOINT_INTERVAL_SECONDS,
      retentionDays: tierTable("AUDIT_RETENTION_DAYS", e.AUDIT_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, true),
      archiveDir: e.AUDIT_ARCHIVE_DIR,
      pruneIntervalSeconds: e.AUDIT_PRUNE_INTERVAL_SECONDS,
      pruneBatchEvents: e.AUDIT_PRUNE_BATCH_EVENTS,
    },
    logStreams: {
      allowedHosts: list(e.LOG_STREAM_ALLOWED_HOSTS ?? "", /[,\s]+/).map((h) => h.toLowerCase()),
      caFile: e.LOG_STREAM_CA_FILE,
      batchSize: e.LOG_STREAM_BATCH_SIZE,
      maxPerTenant: e.LOG_STREAM_MAX_PER_TENANT,
      retryMaxSeconds: e.LOG_STREAM_RETRY_MAX_SECONDS,
      timeoutMs: e.LOG_STREAM_TIMEOUT_MS,
      busyIntervalMs: e.LOG_STREAM_BUSY_INTERVAL_MS,
      leaseSeconds: e.LOG_STREAM_LEASE_SECONDS,
    },
    realtime: {
      pollMs: e.EVENT_FEED_POLL_MS,
      maxQueuedEvents: e.SUBSCRIBER_MAX_QUEUED_EVENTS,
      sendBufferBytes: e.WS_SEND_BUFFER_BYTES,
      slowConsumerSeconds: e.WS_SLOW_CONSUMER_SECONDS,
      maxSocketsPerPrincipal: e.WS_MAX_SOCKETS_PER_PRINCIPAL,
      maxSubscriptionsPerSocket: e.WS_MAX_SUBSCRIPTIONS_PER_SOCKET,
      idleTimeoutSeconds: e.WS_IDLE_TIMEOUT_SECONDS,
      tokenCheckSeconds: e.WS_TOKEN_CHECK_SECONDS,
    },
    providers: {
      /** Where providers send the browser back: `${publicUrl}/oauth/callback/<platform>`. */
      publicUrl,
      timeoutMs: e.PROVIDER_TIMEOUT_MS,
      // Set only when configured: a provider is offered only then.
      ...(e.SLACK_CLIENT_ID
        ? {
            slack: {
              clientId: e.SLACK_CLIENT_ID,
              clientSecret: e.SLACK_CLIENT_SECRET!,
              scopes: list(e.SLACK_SCOPES, /[,\s]+/),
              apiUrl: e.SLACK_API_URL.replace(/\/+$/, ""),
            },
          }
        : {}),
      ...(e.ATLASSIAN_CLIENT_ID
        ? {
            jira: {
              clientId: e.ATLASSIAN_CLIENT_ID,
              clientSecret: e.ATLASSIAN_CLIENT_SECRET!,
              scopes: list(e.ATLASSIAN_SCOPES, /[,\s]+/),
              authUrl: e.ATLASSIAN_AUTH_URL.replace(/\/+$/, ""),
              apiUrl: e.ATLASSIAN_API_URL.replace(/\/+$/, ""),
            },
          }
        : {}),
    },
    // Where the named GitHub Apps come from (src/github/appRegistry.ts reads and validates them).
    githubApps: {
      /** Only the GITHUB_APP_* variables, as given (the registry validates them). */
      env: githubAppEnv,
      dir: e.GITHUB_APPS_DIR,
      pollSeconds: e.GITHUB_APPS_POLL_SECONDS,
      apiUrl: e.GITHUB_API_URL.replace(/\/+$/, ""),
      webUrl: e.GITHUB_URL.replace(/\/+$/, ""),
      timeoutMs: e.PROVIDER_TIMEOUT_MS,
    },
  };
}

/**
 * A per-tier setting: `free:60,pro:300,enterprise:1000`; tiers left out keep their default.
 * With `allowUnlimited`, a tier may say `unlimited` (null).
 */
function tierTable<T extends number | null>(name: string, value: string | undefined, defaults: TierTable<T>, allowUnlimited = false): TierTable<T> {
  const table = { ...defaults };
  if (value === undefined || value.trim() === "") return table;
  for (const part of value
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^(free|pro|enterprise)\s*[:=]\s*(\d+|unlimited)$/.exec(part);
    if (!match || (match[2] === "unlimited" && !allowUnlimited) || match[2] === "0") {
      throw new ConfigError(
        `invalid configuration: ${name}: expected tier:number pairs such as free:60,pro:300,enterprise:1000${allowUnlimited ? " (or tier:unlimited)" : ""}, got "${part}"`,
      );
    }
    table[match[1] as keyof TierTable] = (match[2] === "unlimited" ? null : Number(match[2])) as T;
  }
  return table;
}

function requireTogether(names: Array<keyof Env>, e: Env) {
  const set = names.filter((n) => e[n] !== undefined && e[n] !== "");
  if (set.length && set.length !== names.length) {
    throw new ConfigError(`invalid configuration: ${names.join(", ")} must be set together (missing ${names.filter((n) => !set.includes(n)).join(", ")})`);
  }
}

/** Exact origins (scheme://host[:port]); "*" is refused: a browser client is named, not guessed. */
function corsOriginsOf(spec: string | undefined): string[] {
  const entries = (spec ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    let origin: string | undefined;
    try {
      origin = new URL(entry).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== entry)
      throw new ConfigError(`invalid configuration: CORS_ORIGINS: "${entry.slice(0, 80)}" is not an origin (scheme://host[:port], no path, no "*")`);
  }
  return entries;
}

function trustedProxiesOf(spec: string | undefined): string[] {
  const entries = (spec ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const problem = trustedProxyProblem(entry);
    if (problem) throw new ConfigError(`invalid configuration: TRUSTED_PROXIES: ${problem}`);
  }
  return entries;
}

/** A TRUSTED_PROXIES entry (an address or a CIDR range): the problem with it, or null. */
export function trustedProxyProblem(entry: string): string | null {
  const [address, prefix, extra] = entry.split("/");
  const family = isIP(address ?? "");
  if (family === 0 || extra !== undefined) return `"${entry}" is not an IP address or CIDR range`;
  if (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 6 ? 128 : 32))) return `"${entry}" has a bad prefix length`;
  return null;
}
