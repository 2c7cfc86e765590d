import { sql } from "kysely";
import type { DatabaseHandle, Db } from "./db.ts";

// Keyplane on Citus: where each table lives. Run after the migrations (migrateToLatest), on every
// `keyplane migrate` and start; it does nothing on PostgreSQL without the citus extension and nothing
// for a table already placed, so operators run the same command on both.

/**
 * One tenant's rows each, distributed by tenant_id in one colocation group (anchored on tenant_heads):
 * a tenant's log, head and read models sit on one node, so its transactions, the append function
 * and its row-level security stay on that node.
 */
export const TENANT_TABLES = [
  "tenant_heads",
  "events",
  "audit_checkpoints",
  "tenants",
  "access_tokens",
  "revoked_tokens",
  "sessions",
  "idempotency_keys",
  "installations",
  "installation_secrets",
  "oauth_states",
  "token_policies",
  "github_tokens",
  "github_token_secrets",
  "agents",
  "agent_presence",
  "enrollment_keys",
  "tasks",
  "log_streams",
  "log_stream_secrets",
  "log_stream_deliveries",
  "alert_rules",
  "alert_evaluations",
  "audit_prunes",
  "stream_snapshots",
  "projection_snapshots",
  "projection_snapshot_rows",
  "retention_leases",
  "linked_identities",
  "identity_secrets",
] as const;

/**
 * Platform-wide and small, read without knowing the tenant: a copy on every node. The lookup tables of
 * keys unique across tenants (migrations/0012) are here: a reference table's primary key is global.
 */
export const REFERENCE_TABLES = [
  "github_installation_owners",
  "oauth_state_hashes",
  "enrollment_key_prefixes",
  "webhook_deliveries",
  "webhook_payloads",
  "github_unclaimed_installations",
] as const;

/** Written on every request and keyed by their own key: spread by that key, colocated with nothing. */
export const KEYED_TABLES = { rate_limits: "key" } as const;

/** Left on the coordinator: kysely's migration bookkeeping. */
export const COORDINATOR_TABLES = ["kysely_migration", "kysely_migration_lock"] as const;

/**
 * Functions that run on the node holding their tenant, in one round trip (their distribution argument:
 * p_tenant): the append, the live feed's read, and the prune of a prefix (migrations/0019).
 */
const TENANT_FUNCTIONS = [
  "keyplane_append_tenant(text, text, jsonb)",
  "keyplane_events_after(text, bigint, integer)",
  "keyplane_prune_prefix(text, bigint, text, text)",
];

export async function isCitus(handle: Pick<DatabaseHandle, "db" | "backend">): Promise<boolean> {
  if (handle.backend !== "pg") return false;
  const { rows } = await sql<{ citus: boolean }>`select exists (select 1 from pg_extension where extname = 'citus') as citus`.execute(handle.db);
  return rows[0]!.citus;
}

/**
 * Distributes what is not yet distributed; returns what it placed ("table: how"), empty when all was
 * already in place or the database is not Citus.
 */
export async function distributeOnCitus(handle: Pick<DatabaseHandle, "db" | "backend">): Promise<string[]> {
  if (!(await isCitus(handle))) return [];
  const placed = await placedTables(handle.db);
  const done: string[] = [];
  // Every placement in one transaction: all placed or none, and one commit across the nodes instead of one per table.
  await handle.db.transaction().execute(async (trx) => {
    // The append-only triggers of events and audit_checkpoints raise; retention's (migrations/0019)
    // read the same tenant's colocated rows by an equality on tenant_id: the same on every shard.
    await sql`set local citus.enable_unsafe_triggers = on`.execute(trx);
    const place = async (table: string, how: string, call: ReturnType<typeof sql>) => {
      if (placed.has(table)) return;
      await call.execute(trx);
      done.push(`${table}: ${how}`);
    };
    const [anchor, ...colocated] = TENANT_TABLES;
    await place(anchor, "distributed by tenant_id", sql`select create_distributed_table(${anchor}, 'tenant_id')`);
    for (const table of colocated) {
      await place(table, "distributed by tenant_id", sql`select create_distributed_table(${table}, 'tenant_id', colocate_with => ${anchor})`);
    }
    for (const table of REFERENCE_TABLES) await place(table, "reference table", sql`select create_reference_table(${table})`);
    for (const [table, key] of Object.entries(KEYED_TABLES)) {
      await place(table, `distributed by ${key}`, sql`select create_distributed_table(${table}, ${key}, colocate_with => 'none')`);
    }
  });
  const anchor = TENANT_TABLES[0];
  for (const fn of TENANT_FUNCTIONS) {
    const { rows } = await sql<{ delegated: boolean }>`
      select exists (select 1 from pg_dist_object where objid = ${fn}::regprocedure and distribution_argument_index is not null) as delegated`.execute(
      handle.db,
    );
    if (rows[0]!.delegated) continue;
    await sql`select create_distributed_function(${fn}, 'p_tenant', colocate_with => ${anchor}, force_delegation => true)`.execute(handle.db);
    done.push(`${fn.slice(0, fn.indexOf("("))}: delegated to the tenant's node`);
  }
  return done;
}

/** Tables of the current schema that Citus already placed. */
async function placedTables(db: Db): Promise<Set<string>> {
  const { rows } = await sql<{ name: string }>`
    select c.relname as name from pg_dist_partition p join pg_class c on c.oid = p.logicalrelid
    where c.relnamespace = current_schema()::regnamespace`.execute(db);
  return new Set(rows.map((r) => r.name));
}
