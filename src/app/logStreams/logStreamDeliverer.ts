import { performance } from "node:perf_hooks";
import { systemActor, eventMetadata } from "../../auth/actor.ts";
import { logStreamDecider, logStreamStream } from "../../domain/logStream/decider.ts";
import type { LogStreamFilter, LogStreamHealth, LogStreamKind, LogStreamSettings } from "../../domain/logStream/events.ts";
import { ConflictError, NotFoundError } from "../../errors.ts";
import type { LookupAll } from "../../logStreams/addressPolicy.ts";
import { buildRequest, verdictOf, type DestinationSecrets, type Verdict } from "../../logStreams/destinations.ts";
import { DeliveryTransportError, destinationAgent, safePost } from "../../logStreams/safeRequest.ts";
import type { Agent } from "node:https";
import type { Bell } from "../../runtime/abortableStream.ts";
import { failureBackoffMs, leasedWorkers, processOwner, type LeasedWorkers, type WorkerContext } from "../../runtime/leasedWorkers.ts";
import { eventRecordOf } from "../../store/audit/readLogRecords.ts";
import { withTenant } from "../../store/db.ts";
import { eventsAfterAlone } from "../../store/events/readTenantLog.ts";
import type { StoredEvent } from "../../store/events/types.ts";
import {
  advanceCursor,
  claimStreams,
  readPosition,
  recordFailedAttempt,
  releaseStreams,
  type StreamKey,
  type StreamPosition,
} from "../../store/queries/logStreamDeliveryQueries.ts";
import type { AppDeps } from "../deps.ts";
import { handleCommand } from "../handleCommand.ts";
import { destinationPolicy } from "./destinationInput.ts";
import { readStreamSecrets } from "./streamSecrets.ts";

// Delivers every tenant's log streams: each stream by exactly one process at a time, under a lease in
// PostgreSQL that this process renews and another takes over once it lapses (the holder died). A
// stream's worker sends the tenant's events after its cursor, in order, a batch at a time, and moves
// the cursor only once the receiver accepted the batch: at least once, and after a crash only the
// batch in flight is sent again. New events wake the workers of their tenant (this process's commits
// at once, other processes' through the event feed's LISTEN); a slow poll covers lost notifications.

export interface LogStreamDeliverer extends LeasedWorkers {
  /** This process's identity in lease_owner. */
  readonly owner: string;
}

type Deps = Pick<AppDeps, "db" | "keyring" | "config" | "logger" | "metrics" | "events" | "now">;

/** Consecutive failed attempts after which a stream is reported degraded. */
const DEGRADED_AFTER = 2;
/** The longest Retry-After honoured. */
const MAX_RETRY_AFTER_MS = 3_600_000;
const SECURITY_EVENTS = new Set(["auth.failed", "access.denied"]);

interface StreamView {
  kind: LogStreamKind;
  settings: LogStreamSettings;
  filter: LogStreamFilter;
  health: LogStreamHealth;
  active: boolean;
  secrets: DestinationSecrets;
}

export function createLogStreamDeliverer(deps: Deps, options: { owner?: string; lookup?: LookupAll; idlePollMs?: number } = {}): LogStreamDeliverer {
  const settings = deps.config.logStreams;
  const owner = options.owner ?? processOwner();
  const idlePollMs = options.idlePollMs ?? 10_000;
  const load = writeLoad();

  /** One stream, while this process holds it: read after the cursor, send, move the cursor. */
  async function deliverStream(key: StreamKey, { signal, bell }: WorkerContext): Promise<void> {
    // The stream's own kept-alive connection, closed when this process lets the stream go.
    const agent = destinationAgent();
    try {
      await deliverWith(key, signal, bell, agent);
    } finally {
      agent.destroy();
    }
  }

  async function deliverWith(key: StreamKey, signal: AbortSignal, bell: Bell, agent: Agent): Promise<void> {
    let view: StreamView | null = null;
    let generation = -1;
    // Where the stream stands, as last read or moved by this worker; null: read it again. Every write
    // names the generation and position it was decided on, so a stale one changes nothing.
    let position: StreamPosition | null = null;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (!position) {
          position = await readPosition(deps.db, key, owner);
          if (!position) return; // the lease lapsed (another process may hold it now) or the stream is gone
          if (position.generation !== generation) {
            view = await loadStream(key);
            generation = position.generation;
          }
        }
        if (!view?.active || view.health === "error") return;
        if (position.waitMs > 0) {
          await bell.wait(position.waitMs);
          position = null;
          continue;
        }
        const events = await eventsAfterAlone(deps.db, key.tenantId, position.deliveredSeq, settings.batchSize);
        if (events.length === 0) {
          // New events ring the bell; a quiet poll reads the position again (a lease taken over, a lost notice).
          if (!(await rung(bell, idlePollMs))) position = null;
          continue;
        }
        // The stream was changed (destination, secret, filter, paused, replayed) after the position was
        // read: read it again before sending anything on the old terms.
        if (events.some((e) => e.streamType === "log_stream" && e.streamId === key.logStreamId && e.type !== "log_stream.health_changed")) {
          const fresh = await readPosition(deps.db, key, owner);
          if (!fresh || fresh.generation !== generation || fresh.deliveredSeq !== position.deliveredSeq) {
            position = null;
            continue;
          }
        }
        // Retention pruned events this stream had not delivered yet (it was paused, refused or behind
        // for longer than the tenant keeps its log): said in its health, then delivery goes on.
        if (events[0]!.sequence > position.deliveredSeq + 1) {
          const missed = `events ${position.deliveredSeq + 1}-${events[0]!.sequence - 1} were pruned by retention before this stream delivered them`;
          view.health = await recordHealth(key, "degraded", position.deliveredSeq, missed);
        }
        const at = { generation, from: position.deliveredSeq, to: events.at(-1)!.sequence, leaseSeconds: settings.leaseSeconds };
        const wanted = events.filter((event) => matches(view!.filter, event));
        const verdict: Verdict = wanted.length === 0 ? { outcome: "delivered" } : await send(key, view, wanted, agent);
        if (signal.aborted) return; // stopping: the batch is not acknowledged, the next holder sends it again
        failures = 0;
        if (verdict.outcome === "delivered") {
          if (!(await advanceCursor(deps.db, key, owner, { ...at, delivered: wanted.length > 0 }))) {
            position = null; // changed meanwhile: look again
            continue;
          }
          position = { ...position, deliveredSeq: at.to, attempts: 0, waitMs: 0 };
          if (wanted.length > 0 && view.health !== "healthy") view.health = await recordHealth(key, "healthy", at.to);
          // Busy: let events gather into the next batch rather than send each one on its own.
          if (wanted.length > 0 && events.length < settings.batchSize && load.busy()) await pause(settings.busyIntervalMs, signal);
          continue;
        }
        const reason = scrub(verdict.reason, view.secrets);
        const from = position.deliveredSeq;
        if (verdict.outcome === "refused") {
          await recordFailedAttempt(deps.db, key, owner, { generation, error: reason, retryInMs: 0 });
          view.health = await recordHealth(key, "error", from, reason);
          return;
        }
        const retryInMs = retryDelay(position.attempts + 1, verdict, settings.retryMaxSeconds);
        const attempts = await recordFailedAttempt(deps.db, key, owner, { generation, error: reason, retryInMs });
        position = attempts === null ? null : { ...position, attempts, waitMs: retryInMs };
        if (attempts !== null && attempts >= DEGRADED_AFTER && (view.health === "pending" || view.health === "healthy")) {
          view.health = await recordHealth(key, "degraded", from, reason);
        }
      } catch (error) {
        // The database or our own code failed, not the receiver: wait a little, growing, and go on.
        failures++;
        position = null;
        deps.logger.warn({ err: error, tenantId: key.tenantId, logStreamId: key.logStreamId }, "log stream: delivering failed; trying again");
        await bell.wait(failureBackoffMs(failures));
      }
    }
  }

  async function loadStream(key: StreamKey): Promise<StreamView | null> {
    return withTenant(deps.db, key.tenantId, async (trx) => {
      const row = await trx
        .selectFrom("log_streams")
        .select(["kind", "settings", "filter", "state", "health"])
        .where("tenant_id", "=", key.tenantId)
        .where("log_stream_id", "=", key.logStreamId)
        .executeTakeFirst();
      const secrets = row ? await readStreamSecrets(trx, deps.keyring, key.tenantId, key.logStreamId) : null;
      if (!row || !secrets) return null;
      return { kind: row.kind, settings: row.settings, filter: row.filter, health: row.health, active: row.state === "active", secrets };
    });
  }

  async function send(key: StreamKey, view: StreamView, events: StoredEvent[], agent: Agent): Promise<Verdict> {
    const now = deps.now();
    const request = buildRequest(view.kind, view.settings, view.secrets, { ...key, events: events.map(eventRecordOf) }, now);
    const end = deps.metrics.logStreamDeliveryDuration.startTimer({ kind: view.kind });
    let verdict: Verdict;
    try {
      const response = await safePost(
        request.url,
        { headers: request.headers, body: request.body, connectTimeoutMs: Math.min(5000, settings.timeoutMs), totalTimeoutMs: settings.timeoutMs, agent },
        destinationPolicy(deps.config),
        options.lookup,
      );
      verdict = verdictOf(view.kind, response, now);
    } catch (error) {
      if (!(error instanceof DeliveryTransportError)) throw error;
      // An address that is no longer public (its DNS changed) is refused like a 403: not retried blindly.
      verdict = error.kind === "refused-address" ? { outcome: "refused", reason: error.message } : { outcome: "retry", reason: error.message };
    }
    end();
    deps.metrics.logStreamDeliveries.inc({ kind: view.kind, outcome: verdict.outcome });
    if (verdict.outcome === "delivered") deps.metrics.logStreamEvents.inc({ kind: view.kind }, events.length);
    return verdict;
  }

  /** Records a change of health as the stream's event (the console and the tenant's log see it). */
  async function recordHealth(key: StreamKey, health: LogStreamHealth, deliveredSequence: number, error?: string): Promise<LogStreamHealth> {
    for (let attempt = 0; ; attempt++) {
      try {
        await handleCommand(deps.db, {
          tenantId: key.tenantId,
          ...logStreamStream(key.logStreamId),
          decider: logStreamDecider,
          command: { type: "RecordLogStreamHealth", health, deliveredSequence, ...(error ? { error } : {}) },
          metadata: eventMetadata(systemActor("log-stream-deliverer", key.tenantId)),
          occurredAt: deps.now(),
        });
        return health;
      } catch (e) {
        // An admin changed the stream at the same moment: decide again on what it is now.
        if (e instanceof ConflictError && attempt < 3) continue;
        if (e instanceof NotFoundError) return health;
        throw e;
      }
    }
  }

  const workers = leasedWorkers<StreamKey>({
    name: "log streams",
    db: deps.db,
    logger: deps.logger,
    events: deps.events,
    leaseSeconds: settings.leaseSeconds,
    claim: () => claimStreams(deps.db, owner, settings.leaseSeconds),
    release: () => releaseStreams(deps.db, owner),
    keyOf: (k) => `${k.tenantId}\u0000${k.logStreamId}`,
    work: deliverStream,
    // A stream created, changed or resumed here is taken at once, not at the next renewal.
    claimAfter: (events) => events.some((e) => e.type.startsWith("log_stream.") && e.type !== "log_stream.health_changed"),
    onAppended: load.appended,
  });
  return Object.assign(workers, { owner });
}

/** Events a second, over every tenant, past which this process counts as busy. */
const BUSY_EVENTS_PER_SECOND = 500;

/**
 * Whether this process is busy: its event loop more than half used, or the tenants' logs growing by
 * more than BUSY_EVENTS_PER_SECOND (what the appends it hears of add up to: a measure of the load
 * that does not fall when deliveries wait, so the deliverer does not swing between the two).
 * Measured every half second.
 */
function writeLoad(): { appended(tenantId: string | null, sequence?: number): void; busy(): boolean } {
  const heads = new Map<string, number>();
  let last = performance.eventLoopUtilization();
  let measuredAt = performance.now();
  let events = 0;
  let busy = false;
  return {
    appended(tenantId, sequence) {
      if (tenantId === null || sequence === undefined) return;
      const head = heads.get(tenantId);
      if (head === undefined || sequence > head) {
        if (head !== undefined) events += sequence - head;
        heads.set(tenantId, sequence);
      }
    },
    busy() {
      const now = performance.now();
      if (now - measuredAt >= 500) {
        const current = performance.eventLoopUtilization();
        busy = performance.eventLoopUtilization(current, last).utilization > 0.5 || (events * 1000) / (now - measuredAt) > BUSY_EVENTS_PER_SECOND;
        last = current;
        measuredAt = now;
        events = 0;
        // Only the tenants heard of lately are worth remembering.
        if (heads.size > 100_000) heads.clear();
      }
      return busy;
    },
  };
}

/** Sleeps `ms`, or less if the signal aborts (new events do not cut it short). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Waits for the bell or `ms`; true when the bell rang. */
async function rung(bell: Bell, ms: number): Promise<boolean> {
  let timedOut = false;
  const timer = setTimeout(() => (timedOut = true), ms);
  await bell.wait(ms + 10);
  clearTimeout(timer);
  return !timedOut;
}

const matches = (filter: LogStreamFilter, event: StoredEvent) =>
  (!filter.types?.length || filter.types.includes(event.type)) && (!filter.securityOnly || SECURITY_EVENTS.has(event.type));

/** Exponential from 1 s to the cap, with jitter (half fixed, half random); a longer Retry-After wins (up to an hour). */
function retryDelay(attempt: number, verdict: Extract<Verdict, { outcome: "retry" }>, capSeconds: number): number {
  const base = Math.min(capSeconds * 1000, 1000 * 2 ** (attempt - 1));
  const jittered = base / 2 + Math.random() * (base / 2);
  return Math.max(jittered, Math.min(verdict.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}

/** The receiver's answer without anything of ours it might echo: the secrets, the URL's query and path segments. */
function scrub(reason: string, secrets: DestinationSecrets): string {
  const url = new URL(secrets.url);
  const ours = [secrets.secret, secrets.previous?.secret, ...url.searchParams.values(), ...url.pathname.split("/")].filter(
    (s): s is string => !!s && s.length >= 8,
  );
  return ours.reduce((text, secret) => text.split(secret).join("[redacted]"), reason);
}
