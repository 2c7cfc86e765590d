import type { ColumnType, Generated, Kysely, Transaction } from "kysely";

// Row shapes of every table, as kysely sees them. Timestamps come back as Date on both backends.
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json<T = unknown> = ColumnType<T, string, string>;
type NullableJson<T> = ColumnType<T | null, string | null, string | null>;

export interface TenantHeadsTable {
  tenant_id: string;
  last_seq: number;
  last_chain_hash: string;
}

export interface EventsTable {
  tenant_id: string;
  tenant_seq: number;
  stream_type: string;
  stream_id: string;
  stream_version: number;
  event_id: string;
  event_type: string;
  schema_version: number;
  data: Json<Record<string, unknown>>;
  metadata: Json<Record<string, unknown>>;
  occurred_at: Timestamp;
  recorded_at: ColumnType<Date, Date | string | undefined, Date | string>;
  content_hash: string;
  chain_hash: string;
}

export interface TenantsTable {
  tenant_id: string;
  name: string;
  tier: string;
  status: string;
  suspended_at: Timestamp | null;
  suspension_reason: string | null;
  retention_days: number | null;
  legal_hold_reason: string | null;
  legal_hold_since: Timestamp | null;
  version: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AccessTokensTable {
  tenant_id: string;
  token_id: string;
  subject: string;
  kind: string;
  roles: Json<string[]>;
  scopes: Json<string[]>;
  issued_at: Timestamp;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
}

export interface RevokedTokensTable {
  tenant_id: string;
  token_id: string;
  reason: string;
  revoked_at: Timestamp;
  expires_at: Timestamp;
}

export interface SessionsTable {
  tenant_id: string;
  family_id: string;
  subject: string;
  kind: string;
  roles: Json<string[]>;
  scopes: Json<string[]>;
  current_token_id: string;
  status: string;
  version: number;
  created_at: Timestamp;
  updated_at: Timestamp;
  expires_at: Timestamp;
}

export interface IdempotencyKeysTable {
  tenant_id: string;
  key_hash: string;
  request_hash: string;
  status: "pending" | "done";
  response: string | null;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  expires_at: Timestamp;
}

export interface InstallationsTable {
  tenant_id: string;
  installation_id: string;
  platform: "github" | "slack" | "jira";
  external_id: string;
  /** Generated from the columns below. */
  status: ColumnType<"active" | "suspended" | "needs_reauth" | "revoked", never, never>;
  suspended_by_tenant: Generated<boolean>;
  suspended_by_provider: Generated<boolean>;
  needs_reauth: Generated<boolean>;
  account_id: string;
  account_login: string;
  account_type: string;
  account_url: string | null;
  permissions: Json<Record<string, string>>;
  scopes: Json<string[]>;
  repository_selection: string | null;
  repositories: NullableJson<string[]>;
  details: NullableJson<Record<string, unknown>>;
  credential_fingerprint: string | null;
  credentials_expires_at: Timestamp | null;
  last_refreshed_at: Timestamp | null;
  refresh_failures: Generated<number>;
  last_refresh_error: string | null;
  next_refresh_at: Timestamp | null;
  last_credentials_read_at: Timestamp | null;
  version: number;
  created_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  revoked_at: Timestamp | null;
  /** GitHub only: the named app. */
  app: string | null;
}

export interface InstallationSecretsTable {
  tenant_id: string;
  installation_id: string;
  key_id: string;
  access_token: string;
  refresh_token: string | null;
  expires_at: Timestamp | null;
  updated_at: Timestamp;
}

export interface OAuthStatesTable {
  tenant_id: string;
  request_id: string;
  state_hash: string;
  platform: string;
  actor: Json<{ subject: string; kind: string; roles: string[]; tokenId?: string }>;
  key_id: string | null;
  code_verifier: string | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  consumed_at: Timestamp | null;
  app: string | null;
  /** What the state is for: installing an app, or linking a principal's identity. */
  purpose: Generated<"install" | "link">;
}

export interface WebhookDeliveriesTable {
  provider: string;
  delivery_id: string;
  event: string;
  action: string | null;
  tenant_id: string | null;
  received_at: Timestamp;
}

/** Platform-wide: the SHA-256 of each signed webhook body accepted, for its window (migrations/0011). */
export interface WebhookPayloadsTable {
  provider: string;
  payload_sha256: string;
  delivery_id: string;
  received_at: Timestamp;
  expires_at: Timestamp;
}

export interface GitHubUnclaimedInstallationsTable {
  external_id: string;
  account: Json<{ id: string; login: string; type: string; url?: string }>;
  permissions: Json<Record<string, string>>;
  repository_selection: string | null;
  repositories: Json<string[]>;
  suspended: boolean;
  received_at: Timestamp;
  updated_at: Timestamp;
}

export interface TokenPoliciesTable {
  tenant_id: string;
  name: string;
  app: string;
  roles: Json<string[]>;
  subjects: Json<string[]>;
  agent_tags: Json<string[]>;
  repositories: Json<string[]>;
  permissions: Json<Record<string, string>>;
  version: number;
  updated_by: string;
  updated_at: Timestamp;
}

export interface GitHubTokensTable {
  tenant_id: string;
  token_id: string;
  app: string;
  installation_id: string;
  /** bigint: pg hands it back as a string. */
  github_installation_id: ColumnType<string | number, number, number>;
  requester: string;
  policy: string;
  repositories: NullableJson<string[]>;
  permissions: Json<Record<string, string>>;
  fingerprint: string;
  cached: boolean;
  issued_at: Timestamp;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
  revoke_reason: string | null;
}

export interface GitHubTokenSecretsTable {
  tenant_id: string;
  fingerprint: string;
  key_id: string;
  token: string;
  expires_at: Timestamp;
}

export interface AgentsTable {
  tenant_id: string;
  agent_id: string;
  name: string;
  type: string;
  version: number;
  config: Json<Record<string, unknown>>;
  tags: Json<string[]>;
  status: "draft" | "published" | "deleted";
  connection: "pending" | "online" | "offline";
  ephemeral: Generated<boolean>;
  host: NullableJson<Record<string, unknown>>;
  enrolled_at: Timestamp | null;
  offline_since: Timestamp | null;
  created_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AgentPresenceTable {
  tenant_id: string;
  agent_id: string;
  last_seen_at: Timestamp;
  status: string | null;
  facts: NullableJson<Record<string, unknown>>;
}

export interface EnrollmentKeysTable {
  tenant_id: string;
  key_id: string;
  prefix: string;
  key_hash: string;
  description: string;
  reusable: boolean;
  ephemeral: boolean;
  max_uses: number | null;
  uses: Generated<number>;
  tags: Json<string[]>;
  agent_id: string | null;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
  last_used_at: Timestamp | null;
  created_by: string;
  created_at: Timestamp;
}

export interface TasksTable {
  tenant_id: string;
  task_id: string;
  agent_id: string;
  kind: string;
  payload: Json<unknown>;
  status: "pending" | "claimed" | "completed" | "failed" | "timed_out";
  timeout_seconds: number;
  deadline_at: Timestamp;
  progress: NullableJson<unknown>;
  progress_message: string | null;
  result: NullableJson<unknown>;
  error: string | null;
  dispatched_by: string;
  dispatched_at: Timestamp;
  claimed_at: Timestamp | null;
  finished_at: Timestamp | null;
  version: number;
}

export interface LogStreamsTable {
  tenant_id: string;
  log_stream_id: string;
  name: string;
  kind: "webhook" | "splunk" | "datadog";
  destination: string;
  settings: Json<Record<string, string>>;
  filter: Json<{ types?: string[]; securityOnly: boolean }>;
  secret_fingerprint: string;
  state: "active" | "paused" | "deleted";
  health: "pending" | "healthy" | "degraded" | "error";
  last_error: string | null;
  version: number;
  created_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AlertRulesTable {
  tenant_id: string;
  rule_id: string;
  name: string;
  condition: Json<Record<string, unknown>>;
  cooldown_minutes: number;
  slack: Json<{ installationId: string; channel: string }> | null;
  deleted: Generated<boolean>;
  fired_count: Generated<number>;
  last_fired_at: Timestamp | null;
  created_by: string;
  created_at: Timestamp;
}

export interface AlertEvaluationsTable {
  tenant_id: string;
  evaluated_seq: ColumnType<number, number, number>;
  generation: Generated<number>;
  memory: Generated<Json<Record<string, unknown>>>;
  lease_owner: string | null;
  lease_until: Timestamp | null;
}

/** A recorded prune of a tenant's log (migrations/0019): append-only, checked on insert. */
export interface AuditPrunesTable {
  tenant_id: string;
  upto_seq: ColumnType<number, number, never>;
  from_seq: ColumnType<number, number, never>;
  chain_hash: string;
  events: ColumnType<number, number, never>;
  upto_occurred_at: Timestamp;
  archive_file: string | null;
  archive_sha256: string | null;
  pruned_at: Generated<Timestamp>;
}

/** A stream's state where its pruned events left it. */
export interface StreamSnapshotsTable {
  tenant_id: string;
  stream_type: string;
  stream_id: string;
  version: number;
  state: Json<unknown> | null;
  anchor_seq: ColumnType<number, number, number>;
}

export interface ProjectionSnapshotsTable {
  tenant_id: string;
  snapshot_seq: ColumnType<number, number, number>;
  anchor_seq: ColumnType<number, number, number>;
  taken_at: Generated<Timestamp>;
}

export interface ProjectionSnapshotRowsTable {
  tenant_id: string;
  table_name: string;
  row_no: number;
  row_data: Json<Record<string, unknown>>;
}

export interface RetentionLeasesTable {
  tenant_id: string;
  lease_owner: string;
  lease_until: Timestamp;
}

export interface LinkedIdentitiesTable {
  tenant_id: string;
  identity_id: string;
  subject: string;
  subject_kind: string;
  provider: "github";
  app: string;
  account_id: string;
  login: string;
  status: "linked" | "needs_relink";
  access_expires_at: Timestamp | null;
  refresh_expires_at: Timestamp | null;
  refresh_failures: Generated<number>;
  last_refresh_error: string | null;
  next_refresh_at: Timestamp | null;
  expiring_notice_at: Timestamp | null;
  linked_at: Timestamp;
  refreshed_at: Timestamp | null;
  version: number;
  updated_at: Timestamp;
}

export interface IdentitySecretsTable {
  tenant_id: string;
  identity_id: string;
  key_id: string;
  access_token: string;
  refresh_token: string | null;
  access_expires_at: Timestamp | null;
  refresh_expires_at: Timestamp | null;
  updated_at: Timestamp;
}

export interface LogStreamSecretsTable {
  tenant_id: string;
  log_stream_id: string;
  key_id: string;
  ciphertext: string;
  updated_at: Timestamp;
}

export interface LogStreamDeliveriesTable {
  tenant_id: string;
  log_stream_id: string;
  delivered_seq: ColumnType<number, number, number>;
  generation: Generated<number>;
  lease_owner: string | null;
  lease_until: Timestamp | null;
  attempts: Generated<number>;
  next_attempt_at: Timestamp | null;
  last_success_at: Timestamp | null;
  last_attempt_at: Timestamp | null;
  last_error: string | null;
}

/** Lookup tables of keys unique across tenants (migrations/0012): each key names its tenant's row. */
export interface GitHubInstallationOwnersTable {
  external_id: string;
  tenant_id: string;
  installation_id: string;
}

export interface OAuthStateHashesTable {
  state_hash: string;
  tenant_id: string;
  request_id: string;
  expires_at: Timestamp;
}

export interface EnrollmentKeyPrefixesTable {
  prefix: string;
  tenant_id: string;
  key_id: string;
}

export interface Database {
  tenant_heads: TenantHeadsTable;
  events: EventsTable;
  tenants: TenantsTable;
  access_tokens: AccessTokensTable;
  revoked_tokens: RevokedTokensTable;
  sessions: SessionsTable;
  idempotency_keys: IdempotencyKeysTable;
  installations: InstallationsTable;
  installation_secrets: InstallationSecretsTable;
  oauth_states: OAuthStatesTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_payloads: WebhookPayloadsTable;
  github_unclaimed_installations: GitHubUnclaimedInstallationsTable;
  token_policies: TokenPoliciesTable;
  github_tokens: GitHubTokensTable;
  github_token_secrets: GitHubTokenSecretsTable;
  agents: AgentsTable;
  agent_presence: AgentPresenceTable;
  enrollment_keys: EnrollmentKeysTable;
  tasks: TasksTable;
  log_streams: LogStreamsTable;
  log_stream_secrets: LogStreamSecretsTable;
  linked_identities: LinkedIdentitiesTable;
  identity_secrets: IdentitySecretsTable;
  log_stream_deliveries: LogStreamDeliveriesTable;
  alert_rules: AlertRulesTable;
  alert_evaluations: AlertEvaluationsTable;
  audit_prunes: AuditPrunesTable;
  stream_snapshots: StreamSnapshotsTable;
  projection_snapshots: ProjectionSnapshotsTable;
  projection_snapshot_rows: ProjectionSnapshotRowsTable;
  retention_leases: RetentionLeasesTable;
  github_installation_owners: GitHubInstallationOwnersTable;
  oauth_state_hashes: OAuthStateHashesTable;
  enrollment_key_prefixes: EnrollmentKeyPrefixesTable;
}

/** Read tables rebuilt from the log by `keyplane projections rebuild`. */
export const PROJECTED_TABLES = [
  "tenants",
  "access_tokens",
  "revoked_tokens",
  "sessions",
  "installations",
  "github_installation_owners",
  "token_policies",
  "github_tokens",
  "agents",
  "enrollment_keys",
  "enrollment_key_prefixes",
  "tasks",
  "log_streams",
  "alert_rules",
  "linked_identities",
] as const;
export type ProjectedTable = (typeof PROJECTED_TABLES)[number];

/** The database as kysely sees it, and a transaction on it (re-exported by db.ts, where they are opened). */
export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
