import { AsyncLocalStorage } from "node:async_hooks";
import { sql } from "kysely";
import type { Db, Tx } from "../schema.ts";
import type { StoredEvent } from "./types.ts";

/**
 * The NOTIFY channel live feeds and authentication caches of other processes LISTEN on. Payload
 * "<tenant id> <last sequence>" after an append, never an event; "<tenant id> <last sequence>
 * credentials" when the append also changed whether some token is accepted (CREDENTIAL_EVENTS).
 */
export const EVENTS_CHANNEL = "keyplane_events";

/** Events after which a token or a tenant's standing may have changed: authentication caches drop the tenant. */
export const CREDENTIAL_EVENTS: ReadonlySet<string> = new Set([
  "access_token.revoked",
  "session.revoked",
  "tenant.created",
  "tenant.tier_changed",
  "tenant.suspended",
  "tenant.resumed",
]);

// Once appends have committed, this process hears of them at once, from memory (its live feed hands
// the events to subscribers, its authentication cache drops the tenant), and other processes by a NOTIFY
// sent after the commit, off the appending request's path. Not inside the append: PostgreSQL commits
// notifying transactions one at a time (a global lock held across the commit's WAL flush), which would
// make every append of every process wait for the one before. A hint lost to a crash between the
// commit and the NOTIFY costs the other processes one fallback poll.

const appended = new WeakMap<Tx, StoredEvent[]>();

/** Records events this transaction appended, for its commit. */
export function announceAppend(trx: Tx, events: readonly StoredEvent[]): void {
  let list = appended.get(trx);
  if (!list) appended.set(trx, (list = []));
  list.push(...events);
}

/** What the transaction appended (and forgets it): the caller hands it to appendsCommitted once committed. */
export function takeAppended(trx: Tx): StoredEvent[] {
  const list = appended.get(trx) ?? [];
  appended.delete(trx);
  return list;
}

/** A payload of EVENTS_CHANNEL, read. */
export function parseAppendNotice(payload: string): { tenantId: string; sequence: number; credentials: boolean } | undefined {
  const [tenantId, sequence, flag] = payload.split(" ");
  const n = Number(sequence);
  if (!tenantId || !Number.isSafeInteger(n)) return undefined;
  return { tenantId, sequence: n, credentials: flag === "credentials" };
}

type CommitListener = (events: readonly StoredEvent[]) => void;
const listeners = new WeakMap<Db, Set<CommitListener>>();

/** Told of every append of this process on `db` right after it committed, with the events, before the appender goes on. */
export function onCommittedAppends(db: Db, listener: CommitListener): () => void {
  let set = listeners.get(db);
  if (!set) listeners.set(db, (set = new Set()));
  set.add(listener);
  return () => void set.delete(listener);
}

/** Told of each tenant whose credentials a committed append of this process changed (other processes hear the NOTIFY). */
export function onCommittedCredentialChange(db: Db, listener: (tenantId: string) => void): () => void {
  return onCommittedAppends(db, (events) => {
    for (const tenantId of new Set(events.filter((e) => CREDENTIAL_EVENTS.has(e.type)).map((e) => e.tenantId))) listener(tenantId);
  });
}

/** Says that these appends committed: this process's listeners at once, other processes by NOTIFY. */
export function appendsCommitted(db: Db, events: readonly StoredEvent[]): void {
  if (events.length === 0) return;
  for (const listener of listeners.get(db) ?? []) listener(events);
  hintsOf(db).add(events);
}

// Outside every request's context: the NOTIFY is nobody's round trip and joins nobody's transaction.
const detached = AsyncLocalStorage.snapshot();

/**
 * The NOTIFYs owed to other processes, coalesced: one statement at a time, carrying each tenant's
 * newest sequence appended since the previous one.
 */
class Hints {
  private owed = new Map<string, { sequence: number; credentials: boolean }>();
  private sending = false;

  constructor(private readonly db: Db) {}

  add(events: readonly StoredEvent[]): void {
    for (const e of events) {
      const head = this.owed.get(e.tenantId);
      this.owed.set(e.tenantId, {
        sequence: Math.max(e.sequence, head?.sequence ?? 0),
        credentials: (head?.credentials ?? false) || CREDENTIAL_EVENTS.has(e.type),
      });
    }
    if (!this.sending) detached(() => void this.send());
  }

  private async send(): Promise<void> {
    this.sending = true;
    try {
      while (this.owed.size > 0) {
        const payloads = [...this.owed].map(([tenantId, h]) => `${tenantId} ${h.sequence}${h.credentials ? " credentials" : ""}`);
        this.owed.clear();
        // Unsent (the database is unreachable): listeners catch up by their fallback poll.
        await sql`select pg_notify(${EVENTS_CHANNEL}, hint) from unnest(${payloads}::text[]) as hint`.execute(this.db).catch(() => {});
      }
    } finally {
      this.sending = false;
    }
  }
}

const hints = new WeakMap<Db, Hints>();
function hintsOf(db: Db): Hints {
  let h = hints.get(db);
  if (!h) hints.set(db, (h = new Hints(db)));
  return h;
}
