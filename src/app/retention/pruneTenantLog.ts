import { setTimeout as sleep } from "node:timers/promises";
import { eventMetadata, systemActor } from "../../auth/actor.ts";
import type { Tier } from "../../domain/tenant/events.ts";
import { effectiveRetentionDays } from "../../domain/tenant/retention.ts";
import { AuditPruned } from "../../domain/audit/events.ts";
import { STREAM_DECIDERS } from "../../domain/streamDeciders.ts";
import { withTenant, type DatabaseHandle } from "../../store/db.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import { readPrunedPrefix } from "../../store/retention/prunedPrefix.ts";
import {
  claimRetentionLease,
  prunePrefix,
  readCheckpointSequences,
  readNewestPrunableCheckpoint,
  readStreamEventsInRange,
  readStreamSnapshots,
  releaseRetentionLease,
  takeProjectionSnapshot,
  writeStreamSnapshots,
  type StreamSnapshot,
} from "../../store/retention/pruneQueries.ts";
import type { AppDeps } from "../deps.ts";
import { writeArchive, type WrittenArchive } from "./writeArchive.ts";

export type RetentionDeps = Pick<AppDeps, "db" | "config" | "logger" | "auditSigner" | "now" | "metrics">;

export interface PruneStep {
  fromSequence: number;
  toSequence: number;
  events: number;
  archive: WrittenArchive | null;
}

export type PruneOutcome =
  | { outcome: "pruned"; steps: PruneStep[] }
  /** Nothing older than the period lies behind a checkpoint not yet pruned (or the tier keeps everything). */
  | { outcome: "nothing" }
  | { outcome: "held" }
  /** Another process prunes this tenant now (or died doing so: its lease lapses within a minute). */
  | { outcome: "busy" }
  /** A step failed: it removed nothing; the steps before it stay done. */
  | { outcome: "failed"; steps: PruneStep[]; error: string };

/** Seconds a process holds a tenant's prune without renewing it (renewed before each step and its archive). */
const LEASE_SECONDS = 60;
/**
 * Retention is background work: after each step it waits this many times as long as the step took,
 * so that it takes at most a sixth of the database's time and the tenants' own writes the rest (on
 * the embedded database a step holds its one connection). bench:retention measures the effect: with
 * 4, other tenants' appends kept 0.91 of their rate on PostgreSQL but 0.79 on PGlite.
 */
const PAUSE_PER_STEP_TIME = 5;

/**
 * Prunes the tenant's events older than its retention period, up to the newest signed checkpoint at
 * or before that cut, so the log left starts from a signed anchor. Under the tenant's retention
 * lease (one process at a time): first the read tables are snapshotted at the head, then the range
 * goes in steps of at most AUDIT_PRUNE_BATCH_EVENTS from one checkpoint to another; each step writes
 * its archive (when AUDIT_ARCHIVE_DIR is set) and fsyncs it, then in one transaction moves the pruned
 * streams' snapshots forward, calls keyplane_prune_prefix and appends `audit.pruned`. A crash between
 * archive and prune leaves the range in the log (the next run keeps the archive and prunes it); a step
 * is recorded in audit_prunes, so none is pruned twice. Between steps it pauses (PAUSE_PER_STEP_TIME).
 */
export async function pruneTenantLog(
  deps: RetentionDeps,
  tenantId: string,
  options: { owner: string; database?: Pick<DatabaseHandle, "pool">; signal?: AbortSignal },
): Promise<PruneOutcome> {
  const plan = await withTenant(deps.db, tenantId, async (trx) => {
    const tenant = await trx.selectFrom("tenants").select(["tier", "retention_days", "legal_hold_reason"]).where("tenant_id", "=", tenantId).executeTakeFirst();
    if (!tenant) return null;
    const days = effectiveRetentionDays(tenant.retention_days, deps.config.audit.retentionDays[tenant.tier as Tier] ?? null);
    const pruned = (await readPrunedPrefix(trx, tenantId))?.throughSequence ?? 0;
    if (tenant.legal_hold_reason !== null || days === null) return { held: tenant.legal_hold_reason !== null, days, pruned, target: null };
    const cut = new Date(deps.now().getTime() - days * 86_400_000);
    return { held: false, days, pruned, target: await readNewestPrunableCheckpoint(trx, tenantId, pruned, cut) };
  });
  if (!plan) return { outcome: "nothing" };
  if (plan.held) return { outcome: "held" };
  if (plan.target === null || plan.days === null) return { outcome: "nothing" };
  const { target, days } = plan;

  const claim = () => withTenant(deps.db, tenantId, (trx) => claimRetentionLease(trx, tenantId, options.owner, LEASE_SECONDS));
  if (!(await claim())) return { outcome: "busy" };
  const steps: PruneStep[] = [];
  try {
    // The prune may have moved since the plan was read (another process, before this lease).
    const pruned = await withTenant(deps.db, tenantId, async (trx) => {
      const through = (await readPrunedPrefix(trx, tenantId))?.throughSequence ?? 0;
      if (through < target) await takeProjectionSnapshot(trx, tenantId, target);
      return through;
    });
    const ends = stepEnds(
      await withTenant(deps.db, tenantId, (trx) => readCheckpointSequences(trx, tenantId, pruned, target)),
      pruned,
      deps.config.audit.pruneBatchEvents,
    );
    let after = pruned;
    let lastStepMs = 0;
    for (const end of ends) {
      if (steps.length > 0) {
        // Stopping (SIGTERM) ends the run between steps: the rest waits for the next run.
        const paused = await pause(PAUSE_PER_STEP_TIME * lastStepMs, options.signal);
        if (!paused || !(await claim())) break;
      }
      const startedAt = performance.now();
      const archive = deps.config.audit.archiveDir
        ? await writeArchive(deps, options.database ?? {}, deps.config.audit.archiveDir, tenantId, { fromSequence: after + 1, toSequence: end })
        : null;
      const step = await pruneStep(deps, tenantId, { after, upTo: end }, archive, days);
      deps.metrics.auditPruneSteps.inc({ outcome: "pruned" });
      deps.metrics.auditPrunedEvents.inc(step.events);
      deps.logger.info(
        { tenantId, fromSequence: step.fromSequence, toSequence: step.toSequence, events: step.events, archive: step.archive?.file },
        "audit log pruned",
      );
      steps.push(step);
      lastStepMs = performance.now() - startedAt;
      after = end;
    }
  } catch (error) {
    deps.metrics.auditPruneSteps.inc({ outcome: "failed" });
    deps.logger.error({ err: error, tenantId, stepsDone: steps.length }, "audit retention failed");
    return { outcome: "failed", steps, error: error instanceof Error ? error.message : String(error) };
  } finally {
    await withTenant(deps.db, tenantId, (trx) => releaseRetentionLease(trx, tenantId, options.owner));
  }
  return steps.length ? { outcome: "pruned", steps } : { outcome: "nothing" };
}

/** One step, one transaction: the streams' snapshots, the prune itself, and its event. */
async function pruneStep(deps: RetentionDeps, tenantId: string, range: { after: number; upTo: number }, archive: WrittenArchive | null, days: number) {
  return withTenant(deps.db, tenantId, async (trx): Promise<PruneStep> => {
    await writeStreamSnapshots(trx, tenantId, range.upTo, await snapshotsAfter(trx, tenantId, range));
    const removed = await prunePrefix(trx, tenantId, range.upTo, archive);
    await appendEvents(trx, {
      tenantId,
      streamType: "audit_prune",
      streamId: String(removed.toSequence),
      expectedVersion: 0,
      events: [
        AuditPruned({
          fromSequence: removed.fromSequence,
          toSequence: removed.toSequence,
          events: removed.events,
          anchor: { sequence: removed.toSequence, chainHash: removed.chainHash },
          lastOccurredAt: new Date(removed.occurredAt).toISOString(),
          retentionDays: days,
          archive,
        }),
      ],
      metadata: eventMetadata(systemActor("keyplane:retention", tenantId)),
      occurredAt: deps.now(),
    });
    return { fromSequence: removed.fromSequence, toSequence: removed.toSequence, events: removed.events, archive };
  });
}

/**
 * Each stream with events in the range, where those events leave it: its decider's state folded onto
 * its earlier snapshot (none for streams without a decider) and its last version there.
 */
async function snapshotsAfter(trx: Parameters<typeof readStreamEventsInRange>[0], tenantId: string, range: { after: number; upTo: number }) {
  const rows = await readStreamEventsInRange(trx, tenantId, range, Object.keys(STREAM_DECIDERS));
  const streams: Array<{ type: string; id: string; rows: typeof rows }> = [];
  for (const row of rows) {
    const last = streams[streams.length - 1];
    if (last && last.type === row.stream_type && last.id === row.stream_id) last.rows.push(row);
    else streams.push({ type: row.stream_type, id: row.stream_id, rows: [row] });
  }
  const earlier = await readStreamSnapshots(
    trx,
    tenantId,
    streams.filter((s) => STREAM_DECIDERS[s.type]).map(({ type, id }) => ({ type, id })),
  );
  return streams.map((s): StreamSnapshot => {
    const decider = STREAM_DECIDERS[s.type];
    const key = `${s.type}\u001f${s.id}`;
    const state = decider
      ? s.rows.reduce(
          (folded, r) => decider.evolve(folded, { type: r.event_type!, data: r.data! }),
          earlier.has(key) ? earlier.get(key) : decider.initialState(),
        )
      : null;
    return { type: s.type, id: s.id, version: s.rows[s.rows.length - 1]!.stream_version, state };
  });
}

/** Waits `ms` unless aborted; false when aborted. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * Where each step ends: checkpoints, each the furthest within `batch` events of the step's start (or
 * the next one, when the gap between two checkpoints is wider), the last being the target.
 */
export function stepEnds(checkpoints: number[], after: number, batch: number): number[] {
  const ends: number[] = [];
  let start = after;
  let i = 0;
  while (i < checkpoints.length) {
    let j = i;
    while (j + 1 < checkpoints.length && checkpoints[j + 1]! - start <= batch) j++;
    ends.push(checkpoints[j]!);
    start = checkpoints[j]!;
    i = j + 1;
  }
  return ends;
}
