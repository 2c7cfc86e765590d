import { z } from "zod";
import {
  DEFAULT_AGENT_QUOTAS,
  DEFAULT_ANONYMOUS_PER_MINUTE,
  DEFAULT_AUTH_FAILURES_PER_MINUTE,
  DEFAULT_AUDIT_EXPORTS_PER_HOUR,
  DEFAULT_COST_PER_MINUTE,
  DEFAULT_DOCUMENT_LIMITS,
  DEFAULT_OAUTH_PER_MINUTE,
  DEFAULT_PRINCIPAL_PER_MINUTE,
  DEFAULT_REQUESTS_PER_MINUTE,
  DEFAULT_WEBHOOKS_PER_MINUTE,
  defaultBurstPer10Seconds,
  type LimitsConfig,
  type TierTable,
} from "./limits/policies.ts";
import { trustedProxyProblem } from "./http/clientAddress.ts";

// The only reader of process.env: everything else receives a typed Config.
const duration = z.coerce.number().int().positive();

const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DATABASE_URL: z.string().url().optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().positive().default(10),
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  KEYPLANE_DATA_DIR: z.string().default("./data"),
  KEYPLANE_MIGRATE_ON_START: z.enum(["true", "false"]).optional(),
  KEYPLANE_PUBLIC_URL: z.string().url().optional(),
  KEYPLANE_ISSUER: z.string().default("keyplane"),
  KEYPLANE_AUDIENCE: z.string().default("keyplane"),
  KEYPLANE_SIGNING_KEY: z.string().optional(),
  KEYPLANE_PREVIOUS_SIGNING_KEYS: z.string().optional(),
  AUTH_JWKS_URL: z.string().url().optional(),
  AUTH_ISSUER: z.string().optional(),
  AUTH_AUDIENCE: z.string().optional(),
  USER_TOKEN_TTL_SECONDS: duration.default(3600),
  SERVICE_TOKEN_TTL_SECONDS: duration.default(86400),
  REFRESH_TOKEN_TTL_SECONDS: duration.default(30 * 86400),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Reverse proxies whose X-Forwarded-For is believed: addresses and CIDR ranges, comma-separated. */
  TRUSTED_PROXIES: z.string().optional(),
  CORS_ORIGINS: z.string().optional(),
  KEYPLANE_ENCRYPTION_KEYS: z.string().optional(),
  OAUTH_SUCCESS_URL: z.string().url().optional(),
  OAUTH_STATE_TTL_SECONDS: duration.default(600),
  WEBHOOK_MAX_BODY_BYTES: z.coerce.number().int().positive().default(25 * 1024 * 1024),
  CREDENTIAL_REFRESH_INTERVAL_SECONDS: duration.default(60),
  CREDENTIAL_REFRESH_WINDOW_SECONDS: duration.default(600),
  PROVIDER_TIMEOUT_MS: duration.default(10_000),
  AGENT_OFFLINE_AFTER: duration.default(90),
  AGENT_SWEEP_INTERVAL_SECONDS: duration.default(15),
  ENROLL_ATTEMPTS_PER_MINUTE: duration.default(10),
  AGENT_EPHEMERAL_GRACE_SECONDS: duration.default(1800),
  AUDIT_CHECKPOINT_INTERVAL_SECONDS: duration.default(3600),
  // Rate limits and GraphQL abuse protection (src/limits/policies.ts names every policy).
  REDIS_URL: z.string().url().optional(),
  RATE_LIMITS: z.enum(["on", "off"]).optional(),
  RATE_LIMIT_STORE: z.enum(["memory", "redis", "database"]).optional(),
  RATE_LIMIT_STORE_TIMEOUT_MS: duration.default(1000),
  RATE_LIMIT_REQUESTS_PER_MINUTE: z.string().optional(),
  RATE_LIMIT_BURST_PER_10_SECONDS: z.string().optional(),
  RATE_LIMIT_COST_PER_MINUTE: z.string().optional(),
  RATE_LIMIT_PRINCIPAL_PER_MINUTE: duration.default(DEFAULT_PRINCIPAL_PER_MINUTE),
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: duration.default(DEFAULT_ANONYMOUS_PER_MINUTE),
  RATE_LIMIT_OAUTH_PER_MINUTE: duration.default(DEFAULT_OAUTH_PER_MINUTE),
  RATE_LIMIT_WEBHOOKS_PER_MINUTE: duration.default(DEFAULT_WEBHOOKS_PER_MINUTE),
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: duration.default(DEFAULT_AUTH_FAILURES_PER_MINUTE),
  RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR: duration.default(DEFAULT_AUDIT_EXPORTS_PER_HOUR),
  AGENT_CREATES_PER_DAY: z.string().optional(),
  AGENT_UPDATES_PER_HOUR: z.string().optional(),
  GRAPHQL_MAX_COST: duration.default(DEFAULT_DOCUMENT_LIMITS.maxCost),
  GRAPHQL_MAX_DEPTH: duration.default(DEFAULT_DOCUMENT_LIMITS.maxDepth),
  GRAPHQL_MAX_ALIASES: duration.default(DEFAULT_DOCUMENT_LIMITS.maxAliases),
  GRAPHQL_MAX_DIRECTIVES: duration.default(DEFAULT_DOCUMENT_LIMITS.maxDirectives),
  GRAPHQL_MAX_TOKENS: duration.default(DEFAULT_DOCUMENT_LIMITS.maxTokens),
  GRAPHQL_MAX_BATCH: z.coerce.number().int().min(0).max(100).default(DEFAULT_DOCUMENT_LIMITS.maxBatch),
  GRAPHQL_INTROSPECTION: z.enum(["true", "false"]).optional(),
  GRAPHQL_PERSISTED_OPERATIONS_ONLY: z.enum(["true", "false"]).default("false"),
  GRAPHQL_PERSISTED_OPERATIONS_FILE: z.string().min(1).optional(),
  EVENT_FEED_POLL_MS: duration.default(2000),
  AUTH_CACHE_REVALIDATE_MS: duration.default(500),
  SUBSCRIBER_MAX_QUEUED_EVENTS: duration.default(10_000),
  WS_SEND_BUFFER_BYTES: duration.default(1024 * 1024),
  WS_SLOW_CONSUMER_SECONDS: duration.default(10),
  WS_MAX_SOCKETS_PER_PRINCIPAL: duration.default(20),
  WS_MAX_SUBSCRIPTIONS_PER_SOCKET: duration.default(20),
  WS_IDLE_TIMEOUT_SECONDS: duration.default(300),
  WS_TOKEN_CHECK_SECONDS: duration.default(2),
  GITHUB_API_URL: z.string().url().default("https://api.github.com"),
  GITHUB_URL: z.string().url().default("https://github.com"),
  GITHUB_APP_ID: z.string().optional(),
  GITHUB_APP_SLUG: z.string().optional(),
  GITHUB_APP_PRIVATE_KEY: z.string().optional(),
  GITHUB_APP_WEBHOOK_SECRET: z.string().optional(),
  GITHUB_APP_CLIENT_ID: z.string().optional(),
  GITHUB_APP_CLIENT_SECRET: z.string().optional(),
  /** Name of the app the unnamed GITHUB_APP_* variables describe (src/github/appRegistry.ts). */
  GITHUB_APP_NAME: z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "lower-case letters, digits and dashes").optional(),
  /** Directory of mounted secrets: <dir>/<app name>/{appId,privateKey,webhookSecret,slug?,clientId?,clientSecret?}. */
  GITHUB_APPS_DIR: z.string().min(1).optional(),
  GITHUB_APPS_POLL_SECONDS: z.coerce.number().positive().max(3600).default(5),
  SLACK_API_URL: z.string().url().default("https://slack.com/api"),
  SLACK_CLIENT_ID: z.string().optional(),
  SLACK_CLIENT_SECRET: z.string().optional(),
  SLACK_SCOPES: z.string().default("chat:write,channels:read,team:read"),
  ATLASSIAN_AUTH_URL: z.string().url().default("https://auth.atlassian.com"),
  ATLASSIAN_API_URL: z.string().url().default("https://api.atlassian.com"),
  ATLASSIAN_CLIENT_ID: z.string().optional(),
  ATLASSIAN_CLIENT_SECRET: z.string().optional(),
  ATLASSIAN_SCOPES: z.string().default("read:jira-work write:jira-work read:jira-user offline_access"),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  env: Env["NODE_ENV"];
  host: string;
  port: number;
  logLevel: Env["LOG_LEVEL"];
  database: { url?: string; poolMax: number; connectTimeoutMs: number };
  dataDir: string;
  migrateOnStart: boolean;
  publicUrl: string;
  auth: {
    issuer: string;
    audience: string;
    signingKey?: string;
    previousSigningKeys?: string;
    external?: { jwksUrl: string; issuer: string; audience: string };
    /** How often the credential cache re-reads everything it keeps: the bound on staleness when a NOTIFY is lost. */
    cacheRevalidateMs: number;
    userTokenTtl: number;
    serviceTokenTtl: number;
    refreshTokenTtl: number;
  };
  maxBodyBytes: number;
  /** Addresses and CIDR ranges of reverse proxies whose X-Forwarded-For names the client (src/http/clientAddress.ts). */
  trustedProxies: string[];
  /** Browser origins allowed to call the API cross-origin (without credentials); none by default. */
  corsOrigins: string[];
  /** `id:base64key,…`, first is current; unset means a key generated once into the data dir. */
  encryptionKeys?: string;
  installations: {
    successUrl?: string;
    stateTtlSeconds: number;
    webhookMaxBodyBytes: number;
    refreshIntervalSeconds: number;
    /** Credentials expiring within this window are refreshed ahead of time. */
    refreshWindowSeconds: number;
  };
  providers: ProvidersConfig;
  githubApps: GitHubAppsConfig;
  /** An agent silent this long goes offline; the sweep that notices runs about this often. */
  agents: { offlineAfterSeconds: number; sweepIntervalSeconds: number; enrollAttemptsPerMinute: number; ephemeralGraceSeconds: number };
  /** Every active tenant gets a signed checkpoint of its hash chain at least this often. */
  audit: { checkpointIntervalSeconds: number };
  /** Rate limits, query cost and document limits (src/limits/policies.ts). */
  limits: LimitsConfig;
  /** Live events: the feed's fallback poll, and the bounds every subscriber and socket lives within. */
  realtime: {
    pollMs: number;
    maxQueuedEvents: number;
    sendBufferBytes: number;
    slowConsumerSeconds: number;
    maxSocketsPerPrincipal: number;
    maxSubscriptionsPerSocket: number;
    idleTimeoutSeconds: number;
    tokenCheckSeconds: number;
  };
}

/**
 * Where the named GitHub Apps come from (src/github/appRegistry.ts reads and validates them):
 * GITHUB_APP_<NAME>_* variables, the unnamed GITHUB_APP_* (one app named GITHUB_APP_NAME, default
 * "default"), and/or a directory of mounted secrets.
 */
export interface GitHubAppsConfig {
  /** Only the GITHUB_APP_* variables, as given (values unparsed: the registry validates them). */
  env: Record<string, string>;
  dir?: string;
  /** How often mounted secret files are re-read. */
  pollSeconds: number;
  apiUrl: string;
  webUrl: string;
  timeoutMs: number;
}

export interface SlackConfig {
  clientId: string;
  clientSecret: string;
  scopes: string[];
  apiUrl: string;
}
export interface JiraConfig {
  clientId: string;
  clientSecret: string;
  scopes: string[];
  authUrl: string;
  apiUrl: string;
}
export interface ProvidersConfig {
  /** Where providers send the browser back: `${publicUrl}/oauth/callback/<platform>`. */
  publicUrl: string;
  timeoutMs: number;
  slack?: SlackConfig;
  jira?: JiraConfig;
}

export class ConfigError extends Error {}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  // GitHub Apps are validated, named and read by src/github/appRegistry.ts from config.githubApps.
  requireTogether(["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"], e);
  requireTogether(["ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET"], e);
  const publicUrl = (e.KEYPLANE_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, "");
  const list = (value: string, separator: RegExp) => value.split(separator).map((s) => s.trim()).filter(Boolean);
  const externalParts = [e.AUTH_JWKS_URL, e.AUTH_ISSUER, e.AUTH_AUDIENCE];
  if (externalParts.some(Boolean) && !externalParts.every(Boolean)) {
    throw new ConfigError("invalid configuration: AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE must be set together");
  }
  if (e.GRAPHQL_PERSISTED_OPERATIONS_ONLY === "true" && !e.GRAPHQL_PERSISTED_OPERATIONS_FILE) {
    throw new ConfigError("invalid configuration: GRAPHQL_PERSISTED_OPERATIONS_ONLY needs GRAPHQL_PERSISTED_OPERATIONS_FILE");
  }
  if (e.RATE_LIMIT_STORE === "redis" && !e.REDIS_URL) throw new ConfigError("invalid configuration: RATE_LIMIT_STORE=redis needs REDIS_URL");
  const requestsPerMinute = tierTable("RATE_LIMIT_REQUESTS_PER_MINUTE", e.RATE_LIMIT_REQUESTS_PER_MINUTE, DEFAULT_REQUESTS_PER_MINUTE);
  const derivedBurst: TierTable = { free: defaultBurstPer10Seconds(requestsPerMinute.free), pro: defaultBurstPer10Seconds(requestsPerMinute.pro), enterprise: defaultBurstPer10Seconds(requestsPerMinute.enterprise) };
  const quotaOf = (name: string, value: string | undefined, key: "agent-create" | "agent-update") =>
    tierTable(name, value, { free: DEFAULT_AGENT_QUOTAS.free[key], pro: DEFAULT_AGENT_QUOTAS.pro[key], enterprise: DEFAULT_AGENT_QUOTAS.enterprise[key] }, true);
  const creates = quotaOf("AGENT_CREATES_PER_DAY", e.AGENT_CREATES_PER_DAY, "agent-create");
  const updates = quotaOf("AGENT_UPDATES_PER_HOUR", e.AGENT_UPDATES_PER_HOUR, "agent-update");
  const limits: LimitsConfig = {
    // On in production; elsewhere on request (a developer's or a test's bursts are not abuse).
    enabled: (e.RATE_LIMITS ?? (e.NODE_ENV === "production" ? "on" : "off")) === "on",
    store: e.RATE_LIMIT_STORE ?? (e.REDIS_URL ? "redis" : e.DATABASE_URL ? "database" : "memory"),
    redisUrl: e.REDIS_URL,
    storeTimeoutMs: e.RATE_LIMIT_STORE_TIMEOUT_MS,
    requestsPerMinute,
    burstPer10Seconds: tierTable("RATE_LIMIT_BURST_PER_10_SECONDS", e.RATE_LIMIT_BURST_PER_10_SECONDS, derivedBurst),
    costPerMinute: tierTable("RATE_LIMIT_COST_PER_MINUTE", e.RATE_LIMIT_COST_PER_MINUTE, DEFAULT_COST_PER_MINUTE),
    principalPerMinute: e.RATE_LIMIT_PRINCIPAL_PER_MINUTE,
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
  for (const [name, value] of Object.entries(source)) {
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
    encryptionKeys: e.KEYPLANE_ENCRYPTION_KEYS,
    installations: {
      successUrl: e.OAUTH_SUCCESS_URL,
      stateTtlSeconds: e.OAUTH_STATE_TTL_SECONDS,
      webhookMaxBodyBytes: e.WEBHOOK_MAX_BODY_BYTES,
      refreshIntervalSeconds: e.CREDENTIAL_REFRESH_INTERVAL_SECONDS,
      refreshWindowSeconds: e.CREDENTIAL_REFRESH_WINDOW_SECONDS,
    },
    limits,
    agents: { offlineAfterSeconds: e.AGENT_OFFLINE_AFTER, sweepIntervalSeconds: e.AGENT_SWEEP_INTERVAL_SECONDS, enrollAttemptsPerMinute: e.ENROLL_ATTEMPTS_PER_MINUTE, ephemeralGraceSeconds: e.AGENT_EPHEMERAL_GRACE_SECONDS },
    audit: { checkpointIntervalSeconds: e.AUDIT_CHECKPOINT_INTERVAL_SECONDS },
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
      publicUrl,
      timeoutMs: e.PROVIDER_TIMEOUT_MS,
      slack: e.SLACK_CLIENT_ID
        ? { clientId: e.SLACK_CLIENT_ID, clientSecret: e.SLACK_CLIENT_SECRET!, scopes: list(e.SLACK_SCOPES, /[,\s]+/), apiUrl: e.SLACK_API_URL.replace(/\/+$/, "") }
        : undefined,
      jira: e.ATLASSIAN_CLIENT_ID
        ? {
            clientId: e.ATLASSIAN_CLIENT_ID,
            clientSecret: e.ATLASSIAN_CLIENT_SECRET!,
            scopes: list(e.ATLASSIAN_SCOPES, /[,\s]+/),
            authUrl: e.ATLASSIAN_AUTH_URL.replace(/\/+$/, ""),
            apiUrl: e.ATLASSIAN_API_URL.replace(/\/+$/, ""),
          }
        : undefined,
    },
    githubApps: {
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
  for (const part of value.split(",").map((p) => p.trim()).filter(Boolean)) {
    const match = /^(free|pro|enterprise)\s*[:=]\s*(\d+|unlimited)$/.exec(part);
    if (!match || (match[2] === "unlimited" && !allowUnlimited) || match[2] === "0") {
      throw new ConfigError(`invalid configuration: ${name}: expected tier:number pairs such as free:60,pro:300,enterprise:1000${allowUnlimited ? " (or tier:unlimited)" : ""}, got "${part}"`);
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
  const entries = (spec ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (const entry of entries) {
    let origin: string | undefined;
    try {
      origin = new URL(entry).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== entry) throw new ConfigError(`invalid configuration: CORS_ORIGINS: "${entry.slice(0, 80)}" is not an origin (scheme://host[:port], no path, no "*")`);
  }
  return entries;
}

function trustedProxiesOf(spec: string | undefined): string[] {
  const entries = (spec ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (const entry of entries) {
    const problem = trustedProxyProblem(entry);
    if (problem) throw new ConfigError(`invalid configuration: TRUSTED_PROXIES: ${problem}`);
  }
  return entries;
}
