import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "../logger.ts";
import type { Db } from "../store/db.ts";
import { onCommittedAppends } from "../store/events/announceAppends.ts";
import type { StoredEvent } from "../store/events/types.ts";
import { Bell } from "./abortableStream.ts";
import type { EventFeed } from "./eventFeed.ts";

// Background followers of tenants' logs (log stream deliveries, alert evaluation) share one shape:
// the rows to work on are claimed under a lease in PostgreSQL, renewed every third of it, and each
// claimed row gets a worker of its own that this process runs until the row is no longer its own.
// Workers sleep on a bell that new events of their tenant ring: this process's commits at once,
// other processes' through the event feed's LISTEN.

export interface LeasedWorkers {
  start(): void;
  /** Stops every worker and releases the leases (another process may take them at once). */
  stop(): Promise<void>;
  /** Claims now (something to work on was just made here) rather than at the next renewal. */
  claimSoon(): void;
  /** Workers running now. */
  readonly holding: number;
}

export interface WorkerContext {
  /** Aborted when the row is no longer this process's or the process stops. */
  signal: AbortSignal;
  /** Rung by new events of the worker's tenant (and by the abort). */
  bell: Bell;
}

/** A process's name in lease_owner columns: host, pid and a random part (a restarted pid is another owner). */
export const processOwner = () => `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

/** How long a worker waits after its `failures`-th failure in a row of its own (the database, a bug): 1 s growing to 30 s. */
export const failureBackoffMs = (failures: number) => Math.min(30_000, 500 * 2 ** Math.min(failures, 6));

export interface LeasedWorkersOptions<K extends { tenantId: string }> {
  name: string;
  db: Db;
  logger: Logger;
  events: Pick<EventFeed, "onAppended">;
  leaseSeconds: number;
  /** Takes the free or lapsed rows and renews this process's own: the rows to work on now. */
  claim(): Promise<K[]>;
  /** Lets go of this process's rows. */
  release(): Promise<void>;
  keyOf(key: K): string;
  /** Works on one row until it returns (nothing left to do with it) or the signal aborts. */
  work(key: K, context: WorkerContext): Promise<void>;
  /** Whether events this process just committed call for a claim now. */
  claimAfter?(events: readonly StoredEvent[]): boolean;
  /** Told of every append heard of while running, besides the workers' bells (e.g. to gauge the load). */
  onAppended?(tenantId: string | null, sequence?: number): void;
}

export function leasedWorkers<K extends { tenantId: string }>(options: LeasedWorkersOptions<K>): LeasedWorkers {
  const workers = new Map<string, { key: K; stop: AbortController; bell: Bell; done: Promise<void> }>();
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let claiming: Promise<void> | undefined;
  let again = false;
  const unsubscribe: Array<() => void> = [];

  async function claim() {
    const claimed = await options.claim();
    if (!running) return;
    const keep = new Set(claimed.map(options.keyOf));
    // A row no longer ours (the lease lapsed while this process stalled) or no longer to work on.
    for (const [k, worker] of workers) if (!keep.has(k)) worker.stop.abort();
    for (const key of claimed) if (!workers.has(options.keyOf(key))) startWorker(key);
  }

  function claimSoon() {
    if (!running) return;
    if (claiming) {
      again = true;
      return;
    }
    clearTimeout(timer);
    claiming = claim()
      .catch((error) => options.logger.warn({ err: error }, `${options.name}: claiming failed; trying again shortly`))
      .finally(() => {
        claiming = undefined;
        if (again) {
          again = false;
          claimSoon();
        } else if (running) {
          timer = setTimeout(claimSoon, (options.leaseSeconds * 1000) / 3);
          timer.unref();
        }
      });
  }

  function startWorker(key: K) {
    const k = options.keyOf(key);
    const stop = new AbortController();
    const worker = { key, stop, bell: new Bell(stop.signal), done: Promise.resolve() };
    workers.set(k, worker);
    worker.done = options
      .work(key, { signal: stop.signal, bell: worker.bell })
      .catch((error) => options.logger.error({ err: error, tenantId: key.tenantId }, `${options.name}: a worker failed`))
      .finally(() => {
        if (workers.get(k) === worker) workers.delete(k);
      });
  }

  return {
    get holding() {
      return workers.size;
    },
    claimSoon,
    start() {
      if (running) return;
      running = true;
      unsubscribe.push(
        options.events.onAppended((tenantId, sequence) => {
          options.onAppended?.(tenantId, sequence);
          for (const worker of workers.values()) if (tenantId === null || worker.key.tenantId === tenantId) worker.bell.ring();
        }),
      );
      const claimAfter = options.claimAfter;
      if (claimAfter) unsubscribe.push(onCommittedAppends(options.db, (events) => claimAfter(events) && claimSoon()));
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
      await options.release().catch((error) => options.logger.warn({ err: error }, `${options.name}: releasing leases failed; they lapse on their own`));
    },
  };
}
