import { z } from "zod";

// The only reader of process.env: everything else receives a typed Config.
const duration = z.coerce.number().int().positive();

const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DATABASE_URL: z.string().url().optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().positive().default(10),
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
  database: { url?: string; poolMax: number };
  dataDir: string;
  migrateOnStart: boolean;
  publicUrl: string;
  auth: {
    issuer: string;
    audience: string;
    signingKey?: string;
    previousSigningKeys?: string;
    external?: { jwksUrl: string; issuer: string; audience: string };
    userTokenTtl: number;
    serviceTokenTtl: number;
    refreshTokenTtl: number;
  };
  maxBodyBytes: number;
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
  const githubAppEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) {
    if (name.startsWith("GITHUB_APP_") && typeof value === "string" && value !== "") githubAppEnv[name] = value;
  }
  return {
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    database: { url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX },
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
      userTokenTtl: e.USER_TOKEN_TTL_SECONDS,
      serviceTokenTtl: e.SERVICE_TOKEN_TTL_SECONDS,
      refreshTokenTtl: e.REFRESH_TOKEN_TTL_SECONDS,
    },
    maxBodyBytes: e.MAX_BODY_BYTES,
    encryptionKeys: e.KEYPLANE_ENCRYPTION_KEYS,
    installations: {
      successUrl: e.OAUTH_SUCCESS_URL,
      stateTtlSeconds: e.OAUTH_STATE_TTL_SECONDS,
      webhookMaxBodyBytes: e.WEBHOOK_MAX_BODY_BYTES,
      refreshIntervalSeconds: e.CREDENTIAL_REFRESH_INTERVAL_SECONDS,
      refreshWindowSeconds: e.CREDENTIAL_REFRESH_WINDOW_SECONDS,
    },
    agents: { offlineAfterSeconds: e.AGENT_OFFLINE_AFTER, sweepIntervalSeconds: e.AGENT_SWEEP_INTERVAL_SECONDS, enrollAttemptsPerMinute: e.ENROLL_ATTEMPTS_PER_MINUTE, ephemeralGraceSeconds: e.AGENT_EPHEMERAL_GRACE_SECONDS },
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

function requireTogether(names: Array<keyof Env>, e: Env) {
  const set = names.filter((n) => e[n] !== undefined && e[n] !== "");
  if (set.length && set.length !== names.length) {
    throw new ConfigError(`invalid configuration: ${names.join(", ")} must be set together (missing ${names.filter((n) => !set.includes(n)).join(", ")})`);
  }
}
