import { z } from "zod";
import {
  DEFAULT_AGENT_PER_MINUTE,
  DEFAULT_AGENT_QUOTAS,
  DEFAULT_RETENTION_DAYS,
  DEFAULT_ANONYMOUS_PER_MINUTE,
  DEFAULT_AUDIT_EXPORTS_PER_HOUR,
  DEFAULT_AUTH_FAILURES_PER_MINUTE,
  DEFAULT_COST_PER_MINUTE,
  DEFAULT_DOCUMENT_LIMITS,
  DEFAULT_OAUTH_PER_MINUTE,
  DEFAULT_PRINCIPAL_PER_MINUTE,
  DEFAULT_REQUESTS_PER_MINUTE,
  DEFAULT_WEBHOOKS_PER_MINUTE,
  defaultBurstPer10Seconds,
  TIER_NAMES,
  type AgentQuota,
  type TierTable,
} from "./limitDefaults.ts";

/**
 * Every environment variable Keyplane reads, with its type, default and meaning: the one catalogue
 * that src/config.ts parses and docs/configuration.md is generated from (`npm run docs:config`).
 * `section` groups the reference; `shownDefault` is the default as the reference states it, for a
 * default that depends on other variables (the parser applies it in src/config.ts).
 */
export interface VariableMeta {
  section: Section;
  description: string;
  shownDefault?: string;
  [key: string]: unknown;
}

export const SECTIONS = [
  "Server",
  "Database",
  "Tokens and authentication",
  "HTTP",
  "Installations",
  "Agents",
  "Audit",
  "Live events",
  "Log streams",
  "Rate limits and abuse protection",
  "GitHub",
  "Slack",
  "Atlassian (Jira)",
] as const;
export type Section = (typeof SECTIONS)[number];

const about = <T extends z.ZodType>(schema: T, section: Section, description: string, shownDefault?: string): T =>
  schema.meta({ section, description, ...(shownDefault ? { shownDefault } : {}) } satisfies VariableMeta);

const seconds = z.coerce.number().int().positive();
const count = z.coerce.number().int().positive();
const flag = z.enum(["true", "false"]);
const tierText = (table: TierTable<number | null>) => TIER_NAMES.map((t) => `${t}:${table[t] ?? "unlimited"}`).join(",");
const quotaText = (quota: AgentQuota) =>
  tierText({ free: DEFAULT_AGENT_QUOTAS.free[quota], pro: DEFAULT_AGENT_QUOTAS.pro[quota], enterprise: DEFAULT_AGENT_QUOTAS.enterprise[quota] });
const burstText = tierText({
  free: defaultBurstPer10Seconds(DEFAULT_REQUESTS_PER_MINUTE.free),
  pro: defaultBurstPer10Seconds(DEFAULT_REQUESTS_PER_MINUTE.pro),
  enterprise: defaultBurstPer10Seconds(DEFAULT_REQUESTS_PER_MINUTE.enterprise),
});

export const variables = {
  // Server
  NODE_ENV: about(
    z.enum(["development", "production", "test"]).default("development"),
    "Server",
    "`development`, `test` or `production`. In `production`, GraphiQL is off and Keyplane refuses to start without `KEYPLANE_SIGNING_KEY` (it never generates a key).",
  ),
  HOST: about(z.string().default("0.0.0.0"), "Server", "Interface the HTTP server listens on."),
  PORT: about(z.coerce.number().int().min(0).max(65535).default(4000), "Server", "HTTP port (`0` picks a free one)."),
  LOG_LEVEL: about(
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    "Server",
    "`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. CLI commands other than `serve` log at `warn` when this is `info`.",
  ),
  KEYPLANE_DATA_DIR: about(
    z.string().default("./data"),
    "Server",
    "Directory for the embedded database (`pgdata/`), the generated signing key (`signing-key.pem`), the first-start `admin-token`, and the lock file `keyplane.pid`. Only one process at a time may use it.",
  ),
  KEYPLANE_PUBLIC_URL: about(
    z.string().url().optional(),
    "Server",
    "Base URL at which clients reach Keyplane. It is the base for callback URLs.",
    "`http://localhost:$PORT`",
  ),

  // Database
  DATABASE_URL: about(
    z.string().url().optional(),
    "Database",
    "`postgres://…` URL of a shared PostgreSQL. When it is not set, Keyplane uses the embedded database in `KEYPLANE_DATA_DIR`.",
  ),
  DATABASE_POOL_MAX: about(count.default(10), "Database", "Most connections per process to `DATABASE_URL`."),
  DATABASE_CONNECT_TIMEOUT_MS: about(
    count.default(5000),
    "Database",
    "How long a request waits for a database connection (the database unreachable, or every pooled connection busy) before it answers `UNAVAILABLE`.",
  ),
  KEYPLANE_MIGRATE_ON_START: about(
    flag.optional(),
    "Database",
    "Whether `serve` applies pending migrations itself. A shared database is migrated with `keyplane migrate`.",
    "`true` without `DATABASE_URL`, else `false`",
  ),

  // Tokens and authentication
  KEYPLANE_ISSUER: about(
    z.string().default("keyplane"),
    "Tokens and authentication",
    "`iss` of the tokens Keyplane signs, and the issuer it accepts for them.",
  ),
  KEYPLANE_AUDIENCE: about(z.string().default("keyplane"), "Tokens and authentication", "`aud` of the tokens Keyplane signs, and the audience it requires."),
  KEYPLANE_SIGNING_KEY: about(
    z.string().optional(),
    "Tokens and authentication",
    "ES256 (EC P-256) private key, PKCS#8 PEM. Every process sharing a database must have the same one. When it is not set outside production, a key is generated once into `<data dir>/signing-key.pem` (mode 0600).",
  ),
  KEYPLANE_PREVIOUS_SIGNING_KEYS: about(
    z.string().optional(),
    "Tokens and authentication",
    "One or more older PEM keys, concatenated. Their public halves are still published and accepted while you rotate keys.",
  ),
  AUTH_JWKS_URL: about(
    z.string().url().optional(),
    "Tokens and authentication",
    "JWKS of an external identity service whose access tokens Keyplane also accepts. Set it together with `AUTH_ISSUER` and `AUTH_AUDIENCE`.",
  ),
  AUTH_ISSUER: about(z.string().optional(), "Tokens and authentication", "`iss` of the external identity service."),
  AUTH_AUDIENCE: about(z.string().optional(), "Tokens and authentication", "`aud` that tokens of the external identity service must carry."),
  USER_TOKEN_TTL_SECONDS: about(seconds.default(3600), "Tokens and authentication", "Default lifetime of user access tokens (1 hour)."),
  SERVICE_TOKEN_TTL_SECONDS: about(
    seconds.default(86400),
    "Tokens and authentication",
    "Default lifetime of service, agent and platform access tokens (24 hours).",
  ),
  REFRESH_TOKEN_TTL_SECONDS: about(seconds.default(30 * 86400), "Tokens and authentication", "Lifetime of a refresh-token family (30 days)."),
  AUTH_CACHE_REVALIDATE_MS: about(
    seconds.default(500),
    "Tokens and authentication",
    "How often each process re-reads the standing (revocations, tenant status and tier) of the tokens its authentication cache keeps: the longest a revocation made elsewhere can go unseen when its notification is lost.",
  ),

  // HTTP
  MAX_BODY_BYTES: about(count.default(1024 * 1024), "HTTP", "Largest request body accepted. Larger bodies get 413."),
  CORS_ORIGINS: about(
    z.string().optional(),
    "HTTP",
    "Browser origins (`https://console.example.com`, comma-separated, exact) allowed to call `/graphql` from another origin. Others get no CORS headers, and no origin ever gets `Access-Control-Allow-Credentials`: tokens are bearer tokens, so a cross-origin client needs no cookies.",
  ),
  TRUSTED_PROXIES: about(
    z.string().optional(),
    "HTTP",
    "Reverse proxies (addresses and CIDR ranges, comma-separated) whose `X-Forwarded-For` names the client, for per-address limits and audit records' `sourceIp`. Without it the connection's peer is the client and the header is ignored.",
  ),

  // Installations
  KEYPLANE_ENCRYPTION_KEYS: about(
    z.string().optional(),
    "Installations",
    "Keyring for credentials at rest: `id:base64key,…` (32-byte keys, the first is current). Required with `DATABASE_URL` or in production; otherwise one key is generated into `<data dir>/encryption-keys` (mode 0600).",
  ),
  OAUTH_SUCCESS_URL: about(
    z.string().url().optional(),
    "Installations",
    "Where the install callback sends the browser (with `installation`, `platform`, `outcome` added to the query). Without it a browser goes to the console's installations page (`<KEYPLANE_PUBLIC_URL>/console/installations`) and an API client (not asking for HTML) gets JSON.",
  ),
  OAUTH_STATE_TTL_SECONDS: about(seconds.default(600), "Installations", "How long an install may take between start and callback."),
  WEBHOOK_MAX_BODY_BYTES: about(count.default(25 * 1024 * 1024), "Installations", "Largest webhook body (GitHub sends up to 25 MB); larger get 413."),
  CREDENTIAL_REFRESH_INTERVAL_SECONDS: about(seconds.default(60), "Installations", "How often (±25 % jitter) each process looks for credentials to refresh."),
  CREDENTIAL_REFRESH_WINDOW_SECONDS: about(
    seconds.default(600),
    "Installations",
    "Rotating credentials expiring within this window are refreshed ahead of time (and before a hand-out).",
  ),
  PROVIDER_TIMEOUT_MS: about(seconds.default(10_000), "Installations", "Timeout of each call to GitHub, Slack or Atlassian."),

  // Agents
  AGENT_OFFLINE_AFTER: about(seconds.default(90), "Agents", "Seconds without a heartbeat after which an agent goes offline."),
  AGENT_SWEEP_INTERVAL_SECONDS: about(
    seconds.default(15),
    "Agents",
    "How often (±25 %) each process runs the agent sweep (offline, ephemeral removal, task timeouts).",
  ),
  ENROLL_ATTEMPTS_PER_MINUTE: about(
    count.default(10),
    "Agents",
    "Refused enrollment attempts (unknown, expired, revoked or used-up keys) allowed per source address and minute; past it further refused keys get `RATE_LIMITED`. A valid key is never refused for others' attempts.",
  ),
  AGENT_EPHEMERAL_GRACE_SECONDS: about(seconds.default(1800), "Agents", "How long an ephemeral agent may stay offline before it is deleted."),

  // Audit
  AUDIT_CHECKPOINT_INTERVAL_SECONDS: about(
    seconds.default(3600),
    "Audit",
    "Every tenant with events gets a signed audit checkpoint once the oldest event after its latest one is this old.",
  ),

  // Log streams
  LOG_STREAM_ALLOWED_HOSTS: about(
    z.string().optional(),
    "Log streams",
    "Hostnames or IP addresses (comma-separated, exact) that log streams may send to even though they resolve to loopback, private or link-local addresses: a receiver on the operator's own network. Everything else must resolve to public addresses only.",
  ),
  LOG_STREAM_CA_FILE: about(
    z.string().min(1).optional(),
    "Log streams",
    "A PEM file of certificate authorities trusted by log stream connections besides the public roots (a receiver with an internal CA).",
  ),
  LOG_STREAM_BATCH_SIZE: about(count.max(5000).default(500), "Log streams", "Most events one delivery carries."),
  LOG_STREAM_MAX_PER_TENANT: about(count.default(10), "Log streams", "Log streams one tenant may have (deleted ones do not count)."),
  LOG_STREAM_RETRY_MAX_SECONDS: about(
    seconds.default(300),
    "Log streams",
    "Longest wait between two attempts at a failing delivery (exponential backoff with jitter from 1 s; a longer `Retry-After` is honoured up to an hour).",
  ),
  LOG_STREAM_BUSY_INTERVAL_MS: about(
    z.coerce.number().int().min(0).max(60_000).default(1000),
    "Log streams",
    "While this process is busy (its event loop over half used, or the tenants' logs growing by over 500 events a second), each stream delivers at most once per this interval, in larger batches, so that delivery yields to serving requests; otherwise every event goes at once. 0: never wait.",
  ),
  LOG_STREAM_TIMEOUT_MS: about(seconds.default(10_000), "Log streams", "Timeout of one delivery: connecting, sending and reading the answer."),
  LOG_STREAM_LEASE_SECONDS: about(
    seconds.default(15),
    "Log streams",
    "How long a process holds a log stream (or a tenant's alert evaluation) without renewing: when it dies, another process takes over within this time.",
  ),

  AUDIT_RETENTION_DAYS: about(
    z.string().optional(),
    "Audit",
    "Days each tier keeps a tenant's log at most, and by default (`free:30,pro:365,enterprise:unlimited`); a tenant's admin may choose fewer. Older events are pruned only behind a signed checkpoint.",
    tierText(DEFAULT_RETENTION_DAYS),
  ),
  AUDIT_ARCHIVE_DIR: about(
    z.string().min(1).optional(),
    "Audit",
    "A directory where each range of a tenant's log is written as a verifiable export file (`<tenant>/<from>-<to>.ndjson`, fsynced) before retention prunes it; unset: pruned events are not archived.",
  ),
  AUDIT_PRUNE_INTERVAL_SECONDS: about(
    seconds.default(3600),
    "Audit",
    "How often (±25 %) each process looks for tenants whose log has events older than their retention; one process prunes a tenant at a time (a lease).",
  ),
  AUDIT_PRUNE_BATCH_EVENTS: about(
    count.max(1_000_000).default(20_000),
    "Audit",
    "Events one prune step removes at most (one transaction, from one signed checkpoint to the next; a step never splits the range between two checkpoints).",
  ),

  // Live events
  EVENT_FEED_POLL_MS: about(seconds.default(2000), "Live events", "Fallback poll of watched tenants' heads, for notifications that were lost."),
  SUBSCRIBER_MAX_QUEUED_EVENTS: about(
    count.default(10_000),
    "Live events",
    "Live events one subscriber may leave unread before its subscription ends with `SLOW_CONSUMER`.",
  ),
  WS_SEND_BUFFER_BYTES: about(
    count.default(1024 * 1024),
    "Live events",
    "Bytes a socket may have waiting to be sent before its operations wait for the client.",
  ),
  WS_SLOW_CONSUMER_SECONDS: about(seconds.default(10), "Live events", "A socket whose send buffer stays full this long is closed with 4008."),
  WS_MAX_SOCKETS_PER_PRINCIPAL: about(count.default(20), "Live events", "Sockets one tenant + subject may hold open on one process."),
  WS_MAX_SUBSCRIPTIONS_PER_SOCKET: about(count.default(20), "Live events", "Operations one socket may run at a time."),
  WS_IDLE_TIMEOUT_SECONDS: about(seconds.default(300), "Live events", "An authenticated socket without any operation this long is closed."),
  WS_TOKEN_CHECK_SECONDS: about(seconds.default(2), "Live events", "How often the tokens of open sockets and SSE subscriptions are checked for revocation."),

  // Rate limits and abuse protection (src/limits/policies.ts names every policy)
  RATE_LIMITS: about(
    z.enum(["on", "off"]).optional(),
    "Rate limits and abuse protection",
    "Request, cost-budget and per-address counting (document limits, enrollment's limit and agent quotas apply either way). Set `on` to try them in development.",
    "`on` in production, else `off`",
  ),
  REDIS_URL: about(
    z.string().url().optional(),
    "Rate limits and abuse protection",
    "`redis://…` of a Redis shared by every process; the rate-limit store then lives there.",
  ),
  RATE_LIMIT_STORE: about(
    z.enum(["memory", "redis", "database"]).optional(),
    "Rate limits and abuse protection",
    "Where rate-limit counters live: `memory` (one process), `redis` or `database` (table `rate_limits` of Keyplane's PostgreSQL).",
    "`redis` with `REDIS_URL`, else `database` with `DATABASE_URL`, else `memory`",
  ),
  RATE_LIMIT_STORE_TIMEOUT_MS: about(
    seconds.default(1000),
    "Rate limits and abuse protection",
    "A shared store slower than this (or failing) is skipped for an in-memory insurance limiter, per process.",
  ),
  RATE_LIMIT_REQUESTS_PER_MINUTE: about(
    z.string().optional(),
    "Rate limits and abuse protection",
    "API requests per tenant and minute, by tier. Tiers left out keep their default.",
    `\`${tierText(DEFAULT_REQUESTS_PER_MINUTE)}\``,
  ),
  RATE_LIMIT_BURST_PER_10_SECONDS: about(
    z.string().optional(),
    "Rate limits and abuse protection",
    "Requests per tenant and ten seconds, by tier. The default is the largest b with 7·b < 2·quota, so no 60-second span lets twice the quota through, while a page's burst of requests still passes.",
    `\`${burstText}\``,
  ),
  RATE_LIMIT_COST_PER_MINUTE: about(
    z.string().optional(),
    "Rate limits and abuse protection",
    "Query cost a tenant may spend per minute, by tier.",
    `\`${tierText(DEFAULT_COST_PER_MINUTE)}\``,
  ),
  RATE_LIMIT_PRINCIPAL_PER_MINUTE: about(
    count.default(DEFAULT_PRINCIPAL_PER_MINUTE),
    "Rate limits and abuse protection",
    "Requests per principal (user, service or agent) and minute.",
  ),
  RATE_LIMIT_AGENT_PER_MINUTE: about(
    z.string().optional(),
    "Rate limits and abuse protection",
    "Requests per enrolled agent and minute, by its tenant's tier; counted on top of the tenant's and the principal's limits. Tiers left out keep their default.",
    `\`${tierText(DEFAULT_AGENT_PER_MINUTE)}\``,
  ),
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: about(
    count.default(DEFAULT_ANONYMOUS_PER_MINUTE),
    "Rate limits and abuse protection",
    "GraphQL operations without a token (`enrollAgent`, `refreshSession`) per source address and minute.",
  ),
  RATE_LIMIT_OAUTH_PER_MINUTE: about(
    count.default(DEFAULT_OAUTH_PER_MINUTE),
    "Rate limits and abuse protection",
    "`/oauth/*` requests per source address and minute.",
  ),
  RATE_LIMIT_WEBHOOKS_PER_MINUTE: about(
    count.default(DEFAULT_WEBHOOKS_PER_MINUTE),
    "Rate limits and abuse protection",
    "`/webhooks/*` requests per source address and minute.",
  ),
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: about(
    count.default(DEFAULT_AUTH_FAILURES_PER_MINUTE),
    "Rate limits and abuse protection",
    "Refused credentials per source address and minute; past it the address is refused until the minute ends.",
  ),
  RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR: about(
    count.default(DEFAULT_AUDIT_EXPORTS_PER_HOUR),
    "Rate limits and abuse protection",
    "`GET /audit/export` requests per tenant and hour (an export streams the whole log).",
  ),
  AGENT_CREATES_PER_DAY: about(
    z.string().optional(),
    "Rate limits and abuse protection",
    "Agent creations per tenant and day, by tier (`unlimited` allowed).",
    `\`${quotaText("agent-create")}\``,
  ),
  AGENT_UPDATES_PER_HOUR: about(
    z.string().optional(),
    "Rate limits and abuse protection",
    "Agent updates per tenant and hour, by tier (`unlimited` allowed).",
    `\`${quotaText("agent-update")}\``,
  ),
  GRAPHQL_MAX_COST: about(count.default(DEFAULT_DOCUMENT_LIMITS.maxCost), "Rate limits and abuse protection", "Largest cost of one operation."),
  GRAPHQL_MAX_DEPTH: about(count.default(DEFAULT_DOCUMENT_LIMITS.maxDepth), "Rate limits and abuse protection", "Deepest selection of one operation."),
  GRAPHQL_MAX_ALIASES: about(count.default(DEFAULT_DOCUMENT_LIMITS.maxAliases), "Rate limits and abuse protection", "Most aliases in one operation."),
  GRAPHQL_MAX_DIRECTIVES: about(count.default(DEFAULT_DOCUMENT_LIMITS.maxDirectives), "Rate limits and abuse protection", "Most directives in one operation."),
  GRAPHQL_MAX_TOKENS: about(count.default(DEFAULT_DOCUMENT_LIMITS.maxTokens), "Rate limits and abuse protection", "Most lexical tokens in one document."),
  GRAPHQL_MAX_BATCH: about(
    z.coerce.number().int().min(0).max(100).default(DEFAULT_DOCUMENT_LIMITS.maxBatch),
    "Rate limits and abuse protection",
    "Operations in one batched request (a JSON array); `0` refuses batches.",
  ),
  GRAPHQL_INTROSPECTION: about(
    flag.optional(),
    "Rate limits and abuse protection",
    'Whether `__schema` and `__type` are answered. Field suggestions ("Did you mean …?") are off in production.',
    "`false` in production, else `true`",
  ),
  GRAPHQL_PERSISTED_OPERATIONS_ONLY: about(
    flag.default("false"),
    "Rate limits and abuse protection",
    "Persisted-operations-only mode for people's tokens (needs `GRAPHQL_PERSISTED_OPERATIONS_FILE`).",
  ),
  GRAPHQL_PERSISTED_OPERATIONS_FILE: about(
    z.string().min(1).optional(),
    "Rate limits and abuse protection",
    "The sha256 (hex) of every document a dashboard may send, as a JSON array, a JSON object keyed by hash, or one per line.",
  ),

  // GitHub (named apps: GITHUB_APP_<NAME>_*, read by src/github/appRegistry.ts; see PATTERN_VARIABLES)
  GITHUB_API_URL: about(z.string().url().default("https://api.github.com"), "GitHub", "GitHub's API base URL (GitHub Enterprise Server, or the test fakes)."),
  GITHUB_URL: about(z.string().url().default("https://github.com"), "GitHub", "GitHub's web base URL."),
  GITHUB_APP_NAME: about(
    z
      .string()
      .regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "lower-case letters, digits and dashes")
      .optional(),
    "GitHub",
    "Name of the app the unnamed `GITHUB_APP_*` variables describe.",
    "`default`",
  ),
  GITHUB_APP_ID: about(z.string().optional(), "GitHub", "The unnamed app's id (or client id)."),
  GITHUB_APP_SLUG: about(z.string().optional(), "GitHub", "The unnamed app's slug (needed to install it)."),
  GITHUB_APP_PRIVATE_KEY: about(
    z.string().optional(),
    "GitHub",
    "The unnamed app's RSA private key (PEM, PKCS#1 or PKCS#8; a one-line value with `\\n` works). Must be absent with a `pkcs11` or `aws-kms` signer.",
  ),
  GITHUB_APP_SIGNER: about(
    z.string().optional(),
    "GitHub",
    "What signs the unnamed app's JWTs: `memory` (its `GITHUB_APP_PRIVATE_KEY`), `pkcs11` (a key on a PKCS#11 token, an HSM) or `aws-kms` (a key in AWS KMS). A key kept elsewhere is checked at start (found, RSA of 2048 bits or more, a signature verified); its fingerprint is logged.",
    "`memory`",
  ),
  GITHUB_APP_PKCS11_MODULE: about(
    z.string().optional(),
    "GitHub",
    "`pkcs11` signer: absolute path of the PKCS#11 library (e.g. `/usr/lib/softhsm/libsofthsm2.so`).",
  ),
  GITHUB_APP_PKCS11_TOKEN_LABEL: about(z.string().optional(), "GitHub", "`pkcs11` signer: the token's label (or give `GITHUB_APP_PKCS11_SLOT`)."),
  GITHUB_APP_PKCS11_SLOT: about(z.string().optional(), "GitHub", "`pkcs11` signer: the token's slot id, instead of its label."),
  GITHUB_APP_PKCS11_PIN: about(z.string().optional(), "GitHub", "`pkcs11` signer: the token's user PIN (never logged). Or `GITHUB_APP_PKCS11_PIN_FILE`."),
  GITHUB_APP_PKCS11_PIN_FILE: about(z.string().optional(), "GitHub", "`pkcs11` signer: a file holding the user PIN (a mounted secret), read at start."),
  GITHUB_APP_PKCS11_KEY_LABEL: about(z.string().optional(), "GitHub", "`pkcs11` signer: the private key's label (`CKA_LABEL`)."),
  GITHUB_APP_PKCS11_KEY_ID: about(z.string().optional(), "GitHub", "`pkcs11` signer: the private key's id (`CKA_ID`, hex), with or instead of its label."),
  GITHUB_APP_KMS_KEY_ID: about(
    z.string().optional(),
    "GitHub",
    "`aws-kms` signer: the key's id, ARN, alias (`alias/…`) or alias ARN. Credentials come from the AWS SDK's default chain (IRSA on EKS).",
  ),
  GITHUB_APP_KMS_REGION: about(z.string().optional(), "GitHub", "`aws-kms` signer: the key's region.", "the key ARN's region, else `AWS_REGION`"),
  GITHUB_APP_KMS_ENDPOINT: about(z.string().optional(), "GitHub", "`aws-kms` signer: another KMS endpoint (a VPC endpoint's URL)."),
  GITHUB_APP_WEBHOOK_SECRET: about(z.string().optional(), "GitHub", "The unnamed app's webhook secret."),
  GITHUB_APP_CLIENT_ID: about(z.string().optional(), "GitHub", "The unnamed app's OAuth client id."),
  GITHUB_APP_CLIENT_SECRET: about(z.string().optional(), "GitHub", "The unnamed app's OAuth client secret."),
  GITHUB_APPS_DIR: about(
    z.string().min(1).optional(),
    "GitHub",
    "Directory of mounted secrets, one subdirectory per app: `<dir>/<name>/appId`, `privateKey`, `webhookSecret`, optional `slug`, `clientId`, `clientSecret` (what External Secrets produces); with a key kept elsewhere, `signer` and its settings (`pkcs11Module`, `pkcs11TokenLabel` or `pkcs11Slot`, `pkcs11Pin`, `pkcs11KeyLabel` and/or `pkcs11KeyId`; `kmsKeyId`, `kmsRegion`, `kmsEndpoint`) instead of `privateKey`. Changed files are picked up while running (a rotated key is used by the next request; a new HSM or KMS key once it passed the start check); a malformed rotation keeps the previous key and logs an error.",
  ),
  GITHUB_APPS_POLL_SECONDS: about(
    z.coerce.number().positive().max(3600).default(5),
    "GitHub",
    "How often mounted app files are checked for changes (besides file-system events).",
  ),

  // Slack
  SLACK_API_URL: about(
    z.string().url().default("https://slack.com/api"),
    "Slack",
    "Slack's Web API; the authorize page is `/oauth/v2/authorize` on the same host.",
  ),
  SLACK_CLIENT_ID: about(z.string().optional(), "Slack", "The Slack app's client id. Set together with `SLACK_CLIENT_SECRET`."),
  SLACK_CLIENT_SECRET: about(z.string().optional(), "Slack", "The Slack app's client secret."),
  SLACK_SCOPES: about(z.string().default("chat:write,channels:read,team:read"), "Slack", "Bot scopes asked for (`team:read` is needed)."),

  // Atlassian
  ATLASSIAN_AUTH_URL: about(z.string().url().default("https://auth.atlassian.com"), "Atlassian (Jira)", "Atlassian's authorization server."),
  ATLASSIAN_API_URL: about(z.string().url().default("https://api.atlassian.com"), "Atlassian (Jira)", "Atlassian's API gateway."),
  ATLASSIAN_CLIENT_ID: about(
    z.string().optional(),
    "Atlassian (Jira)",
    "The Atlassian OAuth 2.0 (3LO) app's client id. Set together with `ATLASSIAN_CLIENT_SECRET`.",
  ),
  ATLASSIAN_CLIENT_SECRET: about(z.string().optional(), "Atlassian (Jira)", "The Atlassian app's client secret."),
  ATLASSIAN_SCOPES: about(
    z.string().default("read:jira-work write:jira-work read:jira-user offline_access"),
    "Atlassian (Jira)",
    "Scopes asked for; `offline_access` is always added.",
  ),
};

/** Variables named by a pattern, read where they are used (not by the schema): documented here. */
export const PATTERN_VARIABLES: Array<{ name: string; section: Section; description: string }> = [
  {
    name: "GITHUB_APP_<NAME>_ID, _PRIVATE_KEY, _SLUG, _WEBHOOK_SECRET, _CLIENT_ID, _CLIENT_SECRET",
    section: "GitHub",
    description:
      "One named GitHub App per `<NAME>` (e.g. `GITHUB_APP_REX_ID` → app `rex`): app id (or client id), RSA private key (PEM, PKCS#1 or PKCS#8; a one-line value with `\\n` works), slug (needed to install it), webhook secret, and its OAuth client (with it, the install callback checks that the installing user can see the installation — strongly recommended). A missing or malformed key stops Keyplane at start with a message naming the app, never the key. Read by `src/github/appRegistry.ts`.",
  },
  {
    name: "GITHUB_APP_<NAME>_SIGNER, _PKCS11_MODULE, _PKCS11_TOKEN_LABEL, _PKCS11_SLOT, _PKCS11_PIN, _PKCS11_PIN_FILE, _PKCS11_KEY_LABEL, _PKCS11_KEY_ID, _KMS_KEY_ID, _KMS_REGION, _KMS_ENDPOINT",
    section: "GitHub",
    description:
      "Where a named app's key is, when Keyplane must not hold it: `_SIGNER` is `memory` (default: `_PRIVATE_KEY`), `pkcs11` or `aws-kms`, with that signer's settings, as for the unnamed app's `GITHUB_APP_SIGNER`, `GITHUB_APP_PKCS11_*` and `GITHUB_APP_KMS_*` above (e.g. `GITHUB_APP_REX_KMS_KEY_ID`). With `pkcs11` or `aws-kms`, `_PRIVATE_KEY` must be absent. The longest suffix wins: an app may be named `kms` (`GITHUB_APP_KMS_KMS_KEY_ID`); only a name ending in `client`, `kms-key` or `pkcs11-key` cannot take its id from a variable (use `GITHUB_APPS_DIR`).",
  },
];

/** The environment as parsed: every variable above; any other variable passes through untouched (GITHUB_APP_<NAME>_*). */
export const EnvSchema = z.looseObject(variables);
export type Env = z.output<typeof EnvSchema>;
