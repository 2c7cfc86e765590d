import { sql } from "kysely";
import type { LogStreamStats } from "../../metrics.ts";
import { withPlatform, withTenant, type Db } from "../db.ts";

// The deliverer's statements on log_stream_deliveries: leases, the cursor, failed attempts. Lease
// times are the database's clock (now()), shared by every process whatever their own clocks say.
// Every write of a stream's progress names its lease holder and generation: a process that lost the
// stream, or holds an outdated view of it, changes nothing.

export interface StreamKey {
  tenantId: string;
  logStreamId: string;
}

/**
 * Takes every active stream whose lease is free or expired, and renews the ones this process holds:
 * the streams it is to deliver now. A stream refused by its receiver (health error) waits for a change.
 */
export async function claimStreams(db: Db, owner: string, leaseSeconds: number): Promise<StreamKey[]> {
  const rows = await withPlatform(db, async (trx) => {
    const { rows } = await sql<{ tenant_id: string; log_stream_id: string }>`
      update log_stream_deliveries d
      set lease_owner = ${owner}, lease_until = now() + make_interval(secs => ${leaseSeconds})
      from log_streams s
      where s.tenant_id = d.tenant_id and s.log_stream_id = d.log_stream_id
        and s.state = 'active' and s.health <> 'error'
        and (d.lease_owner is null or d.lease_until < now() or d.lease_owner = ${owner})
      returning d.tenant_id, d.log_stream_id`.execute(trx);
    return rows;
  });
  return rows.map((r) => ({ tenantId: r.tenant_id, logStreamId: r.log_stream_id }));
}

/** Lets go of every stream this process holds (it is stopping): another process takes them at once. */
export async function releaseStreams(db: Db, owner: string): Promise<void> {
  await withPlatform(db, (trx) =>
    trx.updateTable("log_stream_deliveries").set({ lease_owner: null, lease_until: null }).where("lease_owner", "=", owner).execute(),
  );
}

export interface StreamPosition {
  deliveredSeq: number;
  generation: number;
  attempts: number;
  /** Milliseconds until a failed delivery may be tried again (0: now). */
  waitMs: number;
}

/** Where the stream stands, if this process still holds it. */
export async function readPosition(db: Db, key: StreamKey, owner: string): Promise<StreamPosition | null> {
  const row = await withTenant(db, key.tenantId, async (trx) => {
    const { rows } = await sql<{ delivered_seq: string | number; generation: number; attempts: number; wait_ms: string | number }>`
      select delivered_seq, generation, attempts,
             greatest(0, coalesce(extract(epoch from next_attempt_at - now()) * 1000, 0)) as wait_ms
      from log_stream_deliveries
      where tenant_id = ${key.tenantId} and log_stream_id = ${key.logStreamId} and lease_owner = ${owner} and lease_until > now()`.execute(trx);
    return rows[0];
  });
  return row ? { deliveredSeq: Number(row.delivered_seq), generation: row.generation, attempts: row.attempts, waitMs: Math.ceil(Number(row.wait_ms)) } : null;
}

/**
 * Moves the cursor from `from` to `to` (a batch delivered, or events the filter leaves out) and
 * renews the lease; false when the stream is no longer this process's at this generation and position.
 */
export async function advanceCursor(
  db: Db,
  key: StreamKey,
  owner: string,
  at: { generation: number; from: number; to: number; delivered: boolean; leaseSeconds: number },
): Promise<boolean> {
  // Two shapes rather than a CASE: Citus refuses now() inside CASE in an UPDATE.
  const delivered = at.delivered ? sql`, last_success_at = now(), last_attempt_at = now()` : sql``;
  const result = await withTenant(db, key.tenantId, async (trx) => {
    // A cursor move lost to a crash only sends its batch again (at least once): its commit need not
    // wait for the WAL flush, which under load cost more than the move itself.
    await sql`set local synchronous_commit = off`.execute(trx);
    return sql`
      update log_stream_deliveries
      set delivered_seq = ${at.to}, attempts = 0, next_attempt_at = null, last_error = null,
          lease_until = now() + make_interval(secs => ${at.leaseSeconds})${delivered}
      where tenant_id = ${key.tenantId} and log_stream_id = ${key.logStreamId}
        and lease_owner = ${owner} and generation = ${at.generation} and delivered_seq = ${at.from}`.execute(trx);
  });
  return Number(result.numAffectedRows ?? 0) === 1;
}

/** Records a failed attempt and when to try again; the attempts so far, or null when no longer held. */
export async function recordFailedAttempt(
  db: Db,
  key: StreamKey,
  owner: string,
  at: { generation: number; error: string; retryInMs: number },
): Promise<number | null> {
  const { rows } = await withTenant(db, key.tenantId, (trx) =>
    sql<{ attempts: number }>`
      update log_stream_deliveries
      set attempts = attempts + 1, last_attempt_at = now(), last_error = ${at.error},
          next_attempt_at = now() + make_interval(secs => ${at.retryInMs / 1000})
      where tenant_id = ${key.tenantId} and log_stream_id = ${key.logStreamId} and lease_owner = ${owner} and generation = ${at.generation}
      returning attempts`.execute(trx),
  );
  return rows[0]?.attempts ?? null;
}

/** Active streams of every tenant by health, and their largest lags: the /metrics gauges. */
export async function readLogStreamStats(db: Db): Promise<LogStreamStats> {
  const { rows } = await withPlatform(db, (trx) =>
    sql<{ health: keyof LogStreamStats["byHealth"]; streams: string | number; lag_events: string | number | null; lag_seconds: string | number | null }>`
      select s.health, count(*) as streams,
             max(coalesce(h.last_seq, 0) - d.delivered_seq) as lag_events,
             max(extract(epoch from now() - e.occurred_at)) as lag_seconds
      from log_streams s
      join log_stream_deliveries d on d.tenant_id = s.tenant_id and d.log_stream_id = s.log_stream_id
      left join tenant_heads h on h.tenant_id = s.tenant_id
      left join events e on e.tenant_id = d.tenant_id and e.tenant_seq = d.delivered_seq + 1
      where s.state = 'active'
      group by s.health`.execute(trx),
  );
  const stats: LogStreamStats = { byHealth: { pending: 0, healthy: 0, degraded: 0, error: 0 }, maxLagEvents: 0, maxLagSeconds: 0 };
  for (const r of rows) {
    stats.byHealth[r.health] = Number(r.streams);
    stats.maxLagEvents = Math.max(stats.maxLagEvents, Number(r.lag_events ?? 0));
    stats.maxLagSeconds = Math.max(stats.maxLagSeconds, Number(r.lag_seconds ?? 0));
  }
  return stats;
}
