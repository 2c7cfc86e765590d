import type { ColumnType, Generated } from "kysely";

// Row shapes of every table, as kysely sees them. Timestamps come back as Date on both backends.
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json<T = unknown> = ColumnType<T, string, string>;

export interface TenantHeadsTable {
  tenant_id: string;
  last_seq: number;
  last_chain_hash: string;
}

export interface EventsTable {
  tenant_id: string;
  tenant_seq: number;
  global_position: Generated<number>;
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

export interface Database {
  tenant_heads: TenantHeadsTable;
  events: EventsTable;
  tenants: TenantsTable;
  access_tokens: AccessTokensTable;
  revoked_tokens: RevokedTokensTable;
  sessions: SessionsTable;
  idempotency_keys: IdempotencyKeysTable;
}

/** Read tables rebuilt from the log by `keyplane projections rebuild`. */
export const PROJECTED_TABLES = ["tenants", "access_tokens", "revoked_tokens", "sessions"] as const;
export type ProjectedTable = (typeof PROJECTED_TABLES)[number];
