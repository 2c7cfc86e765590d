import { sql } from "kysely";
import { PROJECTED_TABLES } from "../schema.ts";
import type { Tx } from "../db.ts";

/** Platform-wide: the ids of tenants not under legal hold, a page at a time in id order (the retention job's list). */
export async function readRetentionCandidates(trx: Tx, afterTenantId: string, limit: number): Promise<string[]> {
  const rows = await trx
    .selectFrom("tenants")
    .select("tenant_id")
    .where("legal_hold_reason", "is", null)
    .where("tenant_id", ">", afterTenantId)
    .orderBy("tenant_id")
    .limit(limit)
    .execute();
  return rows.map((r) => r.tenant_id);
}

/**
 * The newest checkpoint after `after` whose event occurred before `before`: where a prune may end
 * (the log up to it is older than the period). Null when there is none.
 */
export async function readNewestPrunableCheckpoint(trx: Tx, tenantId: string, after: number, before: Date): Promise<number | null> {
  const { rows } = await sql<{ tenant_seq: number }>`
    select c.tenant_seq from audit_checkpoints c
      join events e on e.tenant_id = c.tenant_id and e.tenant_seq = c.tenant_seq
     where c.tenant_id = ${tenantId} and c.tenant_seq > ${after} and e.occurred_at < ${before}::timestamptz
     order by c.tenant_seq desc limit 1`.execute(trx);
  return rows[0] ? Number(rows[0].tenant_seq) : null;
}

/** The checkpoints in (after, upTo], oldest first: the steps a long prune is cut into. */
export async function readCheckpointSequences(trx: Tx, tenantId: string, after: number, upTo: number): Promise<number[]> {
  const { rows } = await sql<{ tenant_seq: number }>`
    select tenant_seq from audit_checkpoints where tenant_id = ${tenantId} and tenant_seq > ${after} and tenant_seq <= ${upTo}
     order by tenant_seq`.execute(trx);
  return rows.map((r) => Number(r.tenant_seq));
}

/** Claims the tenant's retention lease for `seconds` (DB clock); false when another process holds it. */
export async function claimRetentionLease(trx: Tx, tenantId: string, owner: string, seconds: number): Promise<boolean> {
  // Two statements: Citus takes no now() in an ON CONFLICT's WHERE.
  await sql`insert into retention_leases (tenant_id, lease_owner, lease_until) values (${tenantId}, ${owner}, now() - interval '1 second')
    on conflict (tenant_id) do nothing`.execute(trx);
  const { rows } = await sql`
    update retention_leases set lease_owner = ${owner}, lease_until = now() + make_interval(secs => ${seconds})
     where tenant_id = ${tenantId} and (lease_until < now() or lease_owner = ${owner})
    returning tenant_id`.execute(trx);
  return rows.length > 0;
}

export async function releaseRetentionLease(trx: Tx, tenantId: string, owner: string): Promise<void> {
  await trx.deleteFrom("retention_leases").where("tenant_id", "=", tenantId).where("lease_owner", "=", owner).execute();
}

/**
 * What a stream snapshot needs of a range, in stream order: every event (type and data) of the
 * streams with a decider, and only the last version of the others (their state is their version).
 */
export async function readStreamEventsInRange(
  trx: Tx,
  tenantId: string,
  range: { after: number; upTo: number },
  deciderTypes: readonly string[],
): Promise<Array<{ stream_type: string; stream_id: string; stream_version: number; event_type: string | null; data: Record<string, unknown> | null }>> {
  const { rows } = await sql<{
    stream_type: string;
    stream_id: string;
    stream_version: number;
    event_type: string | null;
    data: Record<string, unknown> | null;
  }>`
    select stream_type, stream_id, stream_version, event_type, data from events
     where tenant_id = ${tenantId} and tenant_seq > ${range.after} and tenant_seq <= ${range.upTo} and stream_type = any(${deciderTypes}::text[])
    union all
    select stream_type, stream_id, max(stream_version), null, null from events
     where tenant_id = ${tenantId} and tenant_seq > ${range.after} and tenant_seq <= ${range.upTo} and stream_type <> all(${deciderTypes}::text[])
     group by stream_type, stream_id
    order by 1, 2, 3`.execute(trx);
  return rows;
}

/** The snapshots these streams already have (from earlier prunes), by "type\u001fid". */
export async function readStreamSnapshots(trx: Tx, tenantId: string, streams: Array<{ type: string; id: string }>): Promise<Map<string, unknown>> {
  const found = new Map<string, unknown>();
  for (let i = 0; i < streams.length; i += 1000) {
    const page = streams.slice(i, i + 1000);
    const { rows } = await sql<{ stream_type: string; stream_id: string; state: unknown }>`
      select s.stream_type, s.stream_id, s.state from stream_snapshots s
        join jsonb_to_recordset(${JSON.stringify(page)}::jsonb) as w(type text, id text) on s.stream_type = w.type and s.stream_id = w.id
       where s.tenant_id = ${tenantId}`.execute(trx);
    for (const r of rows) found.set(`${r.stream_type}\u001f${r.stream_id}`, r.state);
  }
  return found;
}

export interface StreamSnapshot {
  type: string;
  id: string;
  version: number;
  state: unknown;
}

/** Writes (or moves forward) the streams' snapshots, a thousand rows per statement (VALUES: on Citus an INSERT … SELECT of computed rows goes through COPY, which row-level security refuses). */
export async function writeStreamSnapshots(trx: Tx, tenantId: string, anchorSeq: number, snapshots: StreamSnapshot[]): Promise<void> {
  for (let i = 0; i < snapshots.length; i += 1000) {
    await trx
      .insertInto("stream_snapshots")
      .values(
        snapshots.slice(i, i + 1000).map((s) => ({
          tenant_id: tenantId,
          stream_type: s.type,
          stream_id: s.id,
          version: s.version,
          state: s.state === undefined || s.state === null ? null : JSON.stringify(s.state),
          anchor_seq: anchorSeq,
        })),
      )
      .onConflict((oc) =>
        oc.columns(["tenant_id", "stream_type", "stream_id"]).doUpdateSet((eb) => ({
          version: eb.ref("excluded.version"),
          state: eb.ref("excluded.state"),
          anchor_seq: eb.ref("excluded.anchor_seq"),
        })),
      )
      .execute();
  }
}

/** The one call that removes events: keyplane_prune_prefix (migrations/0019) checks and records the prune. */
export async function prunePrefix(
  trx: Tx,
  tenantId: string,
  upTo: number,
  archive: { file: string; sha256: string } | null,
): Promise<{ fromSequence: number; toSequence: number; events: number; chainHash: string; occurredAt: string }> {
  const { rows } = await sql<{ result: { fromSequence: number; toSequence: number; events: number; chainHash: string; occurredAt: string } }>`
    select keyplane_prune_prefix(${tenantId}, ${upTo}, ${archive?.file ?? null}, ${archive?.sha256 ?? null}) as result`.execute(trx);
  const r = rows[0]!.result;
  return { ...r, fromSequence: Number(r.fromSequence), toSequence: Number(r.toSequence), events: Number(r.events) };
}

/**
 * The tables a projection snapshot holds: every read table of a tenant's own rows. The lookup tables
 * (keys unique across tenants; reference tables on Citus) are derived from them on restore.
 */
export const SNAPSHOT_TABLES = PROJECTED_TABLES.filter((t) => t !== "github_installation_owners" && t !== "enrollment_key_prefixes");

/**
 * Replaces the tenant's projection snapshot with its read tables as they are at its head, which is
 * held FOR SHARE meanwhile (its appends wait: the rows and the sequence agree). Returns the head.
 */
export async function takeProjectionSnapshot(trx: Tx, tenantId: string, anchorSeq: number): Promise<number> {
  const { rows } = await sql<{ last_seq: number }>`select last_seq from tenant_heads where tenant_id = ${tenantId} for share`.execute(trx);
  const head = Number(rows[0]?.last_seq ?? 0);
  await trx.deleteFrom("projection_snapshot_rows").where("tenant_id", "=", tenantId).execute();
  for (const table of SNAPSHOT_TABLES) {
    await sql`insert into projection_snapshot_rows (tenant_id, table_name, row_no, row_data)
      select t.tenant_id, ${table}, row_number() over (partition by t.tenant_id), to_jsonb(t) from ${sql.table(table)} t where t.tenant_id = ${tenantId}`.execute(
      trx,
    );
  }
  // Replaced, not upserted: Citus takes no now() in an ON CONFLICT's SET.
  await trx.deleteFrom("projection_snapshots").where("tenant_id", "=", tenantId).execute();
  await trx.insertInto("projection_snapshots").values({ tenant_id: tenantId, snapshot_seq: head, anchor_seq: anchorSeq }).execute();
  return head;
}

/** Platform-wide, for a rebuild: every tenant's snapshot position. */
export async function readProjectionSnapshotPositions(trx: Tx): Promise<Map<string, number>> {
  const rows = await trx.selectFrom("projection_snapshots").select(["tenant_id", "snapshot_seq"]).execute();
  return new Map(rows.map((r) => [r.tenant_id, Number(r.snapshot_seq)]));
}

/**
 * Platform-wide, for a rebuild into emptied tables: puts every snapshot's rows back (generated
 * columns regenerate; tenant_id is the snapshot row's, so Citus runs it on each node), then the
 * restored enrollment keys' lookup rows, read and written in batches (on Citus an INSERT … SELECT
 * into a reference table goes through COPY, which row-level security refuses).
 */
export async function restoreProjectionSnapshots(trx: Tx): Promise<void> {
  const { rows } = await sql<{ table_name: string; columns: string; values: string }>`
    select c.relname as table_name, string_agg(quote_ident(a.attname), ', ' order by a.attnum) as columns,
           string_agg(case when a.attname = 'tenant_id' then 'r.tenant_id' else 'p.' || quote_ident(a.attname) end, ', ' order by a.attnum) as values
      from pg_attribute a join pg_class c on c.oid = a.attrelid
     where c.relnamespace = current_schema()::regnamespace and c.relname = any(${[...SNAPSHOT_TABLES]}::text[])
       and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
     group by c.relname`.execute(trx);
  for (const { table_name: table, columns, values } of rows) {
    await sql`insert into ${sql.table(table)} (${sql.raw(columns)}) select ${sql.raw(values)}
      from projection_snapshot_rows r, jsonb_populate_record(null::${sql.table(table)}, r.row_data) p
     where r.table_name = ${table}`.execute(trx);
  }
  const prefixes = await trx.selectFrom("enrollment_keys").select(["prefix", "tenant_id", "key_id"]).execute();
  for (let i = 0; i < prefixes.length; i += 1000)
    await trx
      .insertInto("enrollment_key_prefixes")
      .values(prefixes.slice(i, i + 1000))
      .execute();
}
