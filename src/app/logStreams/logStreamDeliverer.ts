import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { systemActor, eventMetadata } from "../../auth/actor.ts";
import { logStreamDecider, logStreamStream } from "../../domain/logStream/decider.ts";
import type { LogStreamFilter, LogStreamHealth, LogStreamKind, LogStreamSettings } from "../../domain/logStream/events.ts";
import { ConflictError, NotFoundError } from "../../errors.ts";
import type { LookupAll } from "../../logStreams/addressPolicy.ts";
import { buildRequest, verdictOf, type DestinationSecrets, type Verdict } from "../../logStreams/destinations.ts";
import { DeliveryTransportError, safePost } from "../../logStreams/safeRequest.ts";
import { Bell } from "../../runtime/abortableStream.ts";
import { eventRecordOf } from "../../store/audit/readLogRecords.ts";
import { withTenant } from "../../store/db.ts";
import { onCommittedAppends } from "../../store/events/announceAppends.ts";
import { eventsAfterAlone } from "../../store/events/readTenantLog.ts";
import type { StoredEvent } from "../../store/events/types.ts";
import {
  advanceCursor,
  claimStreams,
  readPosition,
  recordFailedAttempt,
  releaseStreams,
  type StreamKey,
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

export interface LogStreamDeliverer {
  start(): void;
  /** Stops every worker (a batch in flight is abandoned, not acknowledged) and releases the leases. */
  stop(): Promise<void>;
  /** Looks for streams to take now (a stream was created, resumed or changed on this process). */
  claimSoon(): void;
  /** This process's identity in lease_owner. */
  readonly owner: string;
  /** Streams this process delivers now. */
  readonly holding: number;
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

interface Worker {
  key: StreamKey;
  stop: AbortController;
  bell: Bell;
  done: Promise<void>;
}

export function createLogStreamDeliverer(deps: Deps, options: { owner?: string; lookup?: LookupAll; idlePollMs?: number } = {}): LogStreamDeliverer {
  const settings = deps.config.logStreams;
  const owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const idlePollMs = options.idlePollMs ?? 10_000;
  const workers = new Map<string, Worker>();
  const keyOf = (k: StreamKey) => `${k.tenantId}\u0000${k.logStreamId}`;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let claiming: Promise<void> | undefined;
  let again = false;
  const unsubscribe: Array<() => void> = [];

  async function claim() {
    const claimed = await claimStreams(deps.db, owner, settings.leaseSeconds);
    if (!running) return;
    const keep = new Set(claimed.map(keyOf));
    // A stream no longer ours (lapsed while this process stalled) or no longer active: let it go.
    for (const [k, worker] of workers) if (!keep.has(k)) worker.stop.abort();
    for (const key of claimed) if (!workers.has(keyOf(key))) startWorker(key);
  }

  /** Claims now, or right after the claim in flight; then every third of a lease. */
  function claimSoon() {
    if (!running) return;
    if (claiming) {
      again = true;
      return;
    }
    clearTimeout(timer);
    claiming = claim()
      .catch((error) => deps.logger.warn({ err: error }, "log streams: claiming streams failed; trying again shortly"))
      .finally(() => {
        claiming = undefined;
        if (again) {
          again = false;
          claimSoon();
        } else if (running) {
          timer = setTimeout(claimSoon, (settings.leaseSeconds * 1000) / 3);
          timer.unref();
        }
      });
  }

  function startWorker(key: StreamKey) {
    const stop = new AbortController();
    const worker: Worker = { key, stop, bell: new Bell(stop.signal), done: Promise.resolve() };
    workers.set(keyOf(key), worker);
    worker.done = deliverStream(worker)
      .catch((error) => deps.logger.error({ err: error, tenantId: key.tenantId, logStreamId: key.logStreamId }, "log stream worker failed"))
      .finally(() => {
        if (workers.get(keyOf(key)) === worker) workers.delete(keyOf(key));
      });
  }

  function ring(tenantId: string | null) {
    for (const worker of workers.values()) if (tenantId === null || worker.key.tenantId === tenantId) worker.bell.ring();
  }

  /** One stream, while this process holds it: read after the cursor, send, move the cursor. */
  async function deliverStream(worker: Worker): Promise<void> {
    const { key, stop, bell } = worker;
    let view: StreamView | null = null;
    let generation = -1;
    let failures = 0;
    while (!stop.signal.aborted) {
      try {
        const position = await readPosition(deps.db, key, owner);
        if (!position) return; // the lease lapsed (another process may hold it now) or the stream is gone
        if (position.generation !== generation) {
          view = await loadStream(key);
          generation = position.generation;
        }
        if (!view?.active || view.health === "error") return;
        if (position.waitMs > 0) {
          await bell.wait(position.waitMs);
          continue;
        }
        const events = await eventsAfterAlone(deps.db, key.tenantId, position.deliveredSeq, settings.batchSize);
        if (events.length === 0) {
          await bell.wait(idlePollMs);
          continue;
        }
        const at = { generation, from: position.deliveredSeq, to: events.at(-1)!.sequence, leaseSeconds: settings.leaseSeconds };
        const wanted = events.filter((event) => matches(view!.filter, event));
        if (wanted.length === 0) {
          await advanceCursor(deps.db, key, owner, { ...at, delivered: false });
          continue;
        }
        const verdict = await send(key, view, wanted);
        if (stop.signal.aborted) return; // stopping: the batch is not acknowledged, the next holder sends it again
        failures = 0;
        if (verdict.outcome === "delivered") {
          if (!(await advanceCursor(deps.db, key, owner, { ...at, delivered: true }))) continue; // changed meanwhile: look again
          if (view.health !== "healthy") view.health = await recordHealth(key, "healthy", at.to);
          continue;
        }
        const reason = scrub(verdict.reason, view.secrets);
        if (verdict.outcome === "refused") {
          await recordFailedAttempt(deps.db, key, owner, { generation, error: reason, retryInMs: 0 });
          view.health = await recordHealth(key, "error", position.deliveredSeq, reason);
          return;
        }
        const attempts = await recordFailedAttempt(deps.db, key, owner, {
          generation,
          error: reason,
          retryInMs: retryDelay(position.attempts + 1, verdict, settings.retryMaxSeconds),
        });
        if (attempts === null) continue;
        if (attempts >= DEGRADED_AFTER && (view.health === "pending" || view.health === "healthy")) {
          view.health = await recordHealth(key, "degraded", position.deliveredSeq, reason);
        }
      } catch (error) {
        // The database or our own code failed, not the receiver: wait a little, growing, and go on.
        failures++;
        deps.logger.warn({ err: error, tenantId: key.tenantId, logStreamId: key.logStreamId }, "log stream: delivering failed; trying again");
        await bell.wait(Math.min(30_000, 500 * 2 ** Math.min(failures, 6)));
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
      const json = <T>(v: unknown): T => (typeof v === "string" ? JSON.parse(v) : v) as T;
      return { kind: row.kind, settings: json(row.settings), filter: json(row.filter), health: row.health, active: row.state === "active", secrets };
    });
  }

  async function send(key: StreamKey, view: StreamView, events: StoredEvent[]): Promise<Verdict> {
    const now = deps.now();
    const request = buildRequest(view.kind, view.settings, view.secrets, { ...key, events: events.map(eventRecordOf) }, now);
    const end = deps.metrics.logStreamDeliveryDuration.startTimer({ kind: view.kind });
    let verdict: Verdict;
    try {
      const response = await safePost(
        request.url,
        { headers: request.headers, body: request.body, connectTimeoutMs: Math.min(5000, settings.timeoutMs), totalTimeoutMs: settings.timeoutMs },
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

  return {
    owner,
    get holding() {
      return workers.size;
    },
    claimSoon,
    start() {
      if (running) return;
      running = true;
      unsubscribe.push(
        deps.events.onAppended((tenantId) => ring(tenantId)),
        // A stream created, changed or resumed here is taken at once, not at the next claim.
        onCommittedAppends(deps.db, (events) => {
          if (events.some((e) => e.type.startsWith("log_stream.") && e.type !== "log_stream.health_changed")) claimSoon();
        }),
      );
      claimSoon();
    },
    async stop() {
      if (!running) return;
      running = false;
      clearTimeout(timer);
      for (const off of unsubscribe.splice(0)) off();
      await claiming;
      const stopping = [...workers.values()];
      for (const worker of stopping) worker.stop.abort();
      await Promise.all(stopping.map((w) => w.done));
      await releaseStreams(deps.db, owner).catch((error) => deps.logger.warn({ err: error }, "log streams: releasing leases failed; they lapse on their own"));
    },
  };
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
