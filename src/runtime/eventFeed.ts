import { DomainError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { withPlatform, withTenant, type DatabaseHandle, type Db } from "../store/db.ts";
import { EVENTS_CHANNEL, onCommittedAppends, parseAppendNotice } from "../store/events/announceAppends.ts";
import { eventsAfterAlone, tenantHeads } from "../store/events/readTenantLog.ts";
import type { StoredEvent } from "../store/events/types.ts";
import { abortableStream, Bell } from "./abortableStream.ts";

export interface EventFeedOptions {
  /** Fallback poll: how often the heads of watched tenants are compared with what was read. */
  pollMs: number;
  /** Live events one subscriber may leave unread before it is dropped as a slow consumer. */
  maxQueued: number;
  /** Rows per read. */
  pageSize?: number;
}

export interface WatchOptions {
  /** Sequence after which to start (0: from the beginning of the tenant's log; "latest": from now on). */
  after: number | "latest";
  /** Only these event types (the cursor still moves past the others). */
  types?: readonly string[];
  /** And only events this accepts (identityEvents: the caller's own). */
  where?: (event: StoredEvent) => boolean;
}

export interface EventFeed {
  /**
   * The tenant's events after `after`: first replayed from the store, then live, each once, in
   * sequence order, with nothing missing at the seam. Ends with SLOW_CONSUMER when the reader falls
   * more than maxQueued events behind the live log.
   */
  watch(tenantId: string, options: WatchOptions): AsyncGenerator<StoredEvent, void, undefined>;
  /** Says that the tenant's log reached `sequence` (unknown: look anyway). */
  wake(tenantId: string, sequence?: number): void;
  /**
   * Tells `listener` of every append this process hears of: its own once committed, other processes'
   * by their NOTIFY (tenant and newest sequence; null tenant: notices may have been lost, look at
   * every tenant). For background consumers of the log such as the log stream deliverer.
   */
  onAppended(listener: AppendListener): () => void;
  /** LISTENs and starts the fallback poll. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Live subscribers, the reads made for them (not counting replays), the fallback polls, and the
   * events handed over from memory (this process's own appends): for metrics and benchmarks.
   */
  readonly stats: { subscribers: number; liveReads: number; polls: number; handedOver: number };
}

export type AppendListener = (tenantId: string | null, sequence?: number) => void;

export class SlowConsumerError extends DomainError {
  constructor(maxQueued: number) {
    super("SLOW_CONSUMER", `more than ${maxQueued} events were waiting to be sent; subscribe again with the last cursor received`);
  }
}

interface Subscriber {
  queue: StoredEvent[];
  bell: Bell;
  /** Catching up from the store: an overflow then only means "read the store once more". */
  live: boolean;
  /** Live events were dropped while catching up. */
  lagging: boolean;
  failed?: SlowConsumerError;
}

interface Channel {
  tenantId: string;
  /** Highest sequence read and handed to the subscribers. */
  head: number;
  subscribers: Set<Subscriber>;
  /** Highest sequence a hint announced. */
  wanted: number;
  /** Read even without a hint beyond head (fallback poll, lost notifications). */
  forced: boolean;
  reading: boolean;
  /** This process's own committed events beyond head, waiting for the ones before them. */
  pending: Map<number, StoredEvent>;
}

/**
 * Delivers each tenant's log to the live subscribers of this process. Events this process appended
 * are handed over from memory once committed (announceAppends.ts), in sequence order: one that
 * arrives before an earlier one waits for it. A NOTIFY hint from another process (tenant + new
 * sequence) wakes the tenant's channel, which reads the new rows once, by sequence, in one statement,
 * for all of its subscribers: one query per tenant per wake-up, whatever their number; so does a gap
 * in what was handed over. Sequences are dense and become visible in commit order, so reading
 * `> head` never skips an event. A lost hint costs at most one fallback poll. A subscriber that does
 * not keep up is dropped, never waited for: writers and other subscribers do not notice it.
 */
export function createEventFeed(
  deps: { db: Db; database: Pick<DatabaseHandle, "listen">; logger: Logger; metrics?: Pick<Metrics, "liveSubscribers" | "liveEventLag"> },
  options: EventFeedOptions,
): EventFeed {
  const pageSize = options.pageSize ?? 500;
  const channels = new Map<string, Channel>();
  const opening = new Map<string, Promise<Channel>>();
  const stats = { subscribers: 0, liveReads: 0, polls: 0, handedOver: 0 };
  let unlisten: (() => Promise<void>) | undefined;
  let unhandOver: (() => void) | undefined;
  let poller: NodeJS.Timeout | undefined;
  const appendListeners = new Set<AppendListener>();
  const tell = (tenantId: string | null, sequence?: number) => {
    for (const listener of appendListeners) listener(tenantId, sequence);
  };

  const readAfter = (tenantId: string, after: number) => eventsAfterAlone(deps.db, tenantId, after, pageSize);

  const headOf = (tenantId: string) => withTenant(deps.db, tenantId, (trx) => tenantHeads(trx, [tenantId])).then(([row]) => Number(row?.last_seq ?? 0));

  function wake(tenantId: string, sequence?: number) {
    const channel = channels.get(tenantId);
    if (!channel) return;
    if (sequence === undefined) channel.forced = true;
    else if (sequence > channel.head) channel.wanted = Math.max(channel.wanted, sequence);
    else return;
    void pump(channel);
  }

  /** Events of this process, just committed: handed to the subscribers of their tenants without a read. */
  function handOver(events: readonly StoredEvent[]) {
    if (appendListeners.size > 0) {
      const heads = new Map<string, number>();
      for (const e of events) heads.set(e.tenantId, Math.max(e.sequence, heads.get(e.tenantId) ?? 0));
      for (const [tenantId, sequence] of heads) tell(tenantId, sequence);
    }
    const touched = new Set<Channel>();
    for (const event of events) {
      const channel = channels.get(event.tenantId);
      if (!channel || event.sequence <= channel.head) continue;
      channel.pending.set(event.sequence, event);
      touched.add(channel);
    }
    for (const channel of touched) advance(channel);
  }

  /** Delivers what was handed over and follows the head; a gap before it is read from the store. */
  function advance(channel: Channel) {
    if (channel.reading) return; // the read in flight advances when it returns
    const run: StoredEvent[] = [];
    for (let next = channel.pending.get(channel.head + 1); next; next = channel.pending.get(channel.head + 1)) {
      channel.pending.delete(next.sequence);
      channel.head = next.sequence;
      run.push(next);
    }
    if (run.length) {
      stats.handedOver += run.length;
      publish(channel, run);
    }
    if (channel.pending.size > 0) {
      // Something before them committed (another process's, or one of ours not yet handed over): read it.
      channel.wanted = Math.max(channel.wanted, ...channel.pending.keys());
      void pump(channel);
    }
  }

  function publish(channel: Channel, events: StoredEvent[]) {
    deps.metrics?.liveEventLag.observe(Math.max(0, Date.now() - Date.parse(events[events.length - 1]!.recordedAt)) / 1000);
    for (const subscriber of channel.subscribers) deliver(channel, subscriber, events);
  }

  async function pump(channel: Channel) {
    if (channel.reading) return;
    channel.reading = true;
    try {
      while ((channel.forced || channel.wanted > channel.head) && channel.subscribers.size > 0) {
        channel.forced = false;
        const before = channel.head;
        for (;;) {
          const events = (await readAfter(channel.tenantId, channel.head)).filter((e) => e.sequence > channel.head);
          stats.liveReads++;
          if (events.length) {
            channel.head = events[events.length - 1]!.sequence;
            publish(channel, events);
          }
          for (const sequence of channel.pending.keys()) if (sequence <= channel.head) channel.pending.delete(sequence);
          if (events.length < pageSize) break;
        }
        // A hint beyond what the store shows (it cannot happen after commit; be safe): stop here.
        if (channel.head === before) channel.wanted = channel.head;
      }
    } catch (error) {
      deps.logger.warn({ err: error, tenantId: channel.tenantId }, "event feed: reading new events failed; the next poll tries again");
    } finally {
      channel.reading = false;
    }
    // What was handed over while reading, and lies beyond what the read reached.
    if (channel.pending.size > 0 && channel.subscribers.size > 0) advance(channel);
  }

  function deliver(channel: Channel, subscriber: Subscriber, events: StoredEvent[]) {
    if (subscriber.queue.length + events.length > options.maxQueued) {
      subscriber.queue = [];
      if (subscriber.live) {
        subscriber.failed = new SlowConsumerError(options.maxQueued);
        leave(channel, subscriber);
      } else {
        subscriber.lagging = true;
      }
    } else {
      subscriber.queue.push(...events);
    }
    subscriber.bell.ring();
  }

  async function join(tenantId: string, subscriber: Subscriber): Promise<Channel> {
    let channel = channels.get(tenantId);
    if (!channel) {
      let open = opening.get(tenantId);
      if (!open) {
        open = (async () => {
          const created: Channel = {
            tenantId,
            head: await headOf(tenantId),
            subscribers: new Set(),
            wanted: 0,
            forced: false,
            reading: false,
            pending: new Map(),
          };
          channels.set(tenantId, created);
          return created;
        })().finally(() => opening.delete(tenantId));
        opening.set(tenantId, open);
      }
      channel = await open;
      // Everyone else may have left meanwhile (the channel was dropped) or a new channel taken its place.
      const current = channels.get(tenantId);
      if (current) channel = current;
      else channels.set(tenantId, channel);
    }
    channel.subscribers.add(subscriber);
    stats.subscribers++;
    deps.metrics?.liveSubscribers.inc();
    return channel;
  }

  function leave(channel: Channel, subscriber: Subscriber) {
    if (!channel.subscribers.delete(subscriber)) return;
    stats.subscribers--;
    deps.metrics?.liveSubscribers.dec();
    if (channel.subscribers.size === 0 && channels.get(channel.tenantId) === channel) channels.delete(channel.tenantId);
  }

  async function poll() {
    if (channels.size === 0) return;
    const watched = [...channels.keys()];
    stats.polls++;
    const heads = await withPlatform(deps.db, (trx) => tenantHeads(trx, watched));
    for (const { tenant_id, last_seq } of heads) wake(tenant_id, Number(last_seq));
  }

  function schedulePoll() {
    poller = setTimeout(() => {
      poll()
        .catch((error) => deps.logger.warn({ err: error }, "event feed: fallback poll failed"))
        .finally(() => {
          if (poller) schedulePoll();
        });
    }, options.pollMs);
    poller.unref();
  }

  function watch(tenantId: string, { after, types, where }: WatchOptions) {
    const typed = types?.length ? new Set(types) : undefined;
    const wanted = (event: StoredEvent) => (!typed || typed.has(event.type)) && (!where || where(event));
    return abortableStream<StoredEvent>(async function* (signal) {
      let cursor = after === "latest" ? await headOf(tenantId) : after;
      // Reads the store from the cursor to its end, yielding what matches.
      async function* catchUp() {
        for (;;) {
          const events = await readAfter(tenantId, cursor);
          for (const event of events) {
            if (signal.aborted) return;
            cursor = event.sequence;
            if (wanted(event)) yield event;
          }
          if (events.length < pageSize) return;
        }
      }

      // Replay without holding live events: a long replay must not count as falling behind.
      yield* catchUp();
      if (signal.aborted) return;
      const subscriber: Subscriber = { queue: [], bell: new Bell(signal), live: false, lagging: false };
      const channel = await join(tenantId, subscriber);
      try {
        // Joined at the channel's head h; this read reaches at least h, and the queue holds what comes
        // after h, unless it overflowed meanwhile (the store was busy): then the store is read again.
        do {
          subscriber.lagging = false;
          yield* catchUp();
        } while (subscriber.lagging && !signal.aborted);
        // What the store already gave is not waiting to be sent: it does not count against the bound.
        subscriber.queue = subscriber.queue.filter((event) => event.sequence > cursor);
        subscriber.live = true;
        while (!signal.aborted) {
          const event = subscriber.queue.shift();
          if (event) {
            if (event.sequence <= cursor) continue;
            // Not expected (reads are by dense sequence), but never skip: fill from the store.
            if (event.sequence > cursor + 1) {
              subscriber.queue.unshift(event);
              yield* catchUp();
              continue;
            }
            cursor = event.sequence;
            if (wanted(event)) yield event;
            continue;
          }
          if (subscriber.failed) throw subscriber.failed;
          await subscriber.bell.wait();
        }
      } finally {
        leave(channel, subscriber);
      }
    });
  }

  return {
    watch,
    wake,
    stats,
    onAppended(listener) {
      appendListeners.add(listener);
      return () => void appendListeners.delete(listener);
    },
    async start() {
      if (unlisten) return;
      unhandOver = onCommittedAppends(deps.db, handOver);
      unlisten = await deps.database.listen(EVENTS_CHANNEL, {
        onNotify(payload) {
          const notice = parseAppendNotice(payload);
          if (!notice) return;
          wake(notice.tenantId, notice.sequence);
          tell(notice.tenantId, notice.sequence);
        },
        onGap() {
          for (const tenantId of channels.keys()) wake(tenantId);
          tell(null);
        },
        onError(error) {
          deps.logger.warn({ err: error.message }, "event feed: LISTEN connection lost; reconnecting (the fallback poll delivers meanwhile)");
        },
      });
      schedulePoll();
    },
    async stop() {
      clearTimeout(poller);
      poller = undefined;
      unhandOver?.();
      unhandOver = undefined;
      await unlisten?.();
      unlisten = undefined;
    },
  };
}
