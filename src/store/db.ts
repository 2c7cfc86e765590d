import { mkdirSync } from "node:fs";
import path from "node:path";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import { PGliteDialect } from "kysely-pglite-dialect";
import { afterTransaction, withOneTransactionSupport, withTransactionBracket, type TransactionBracket } from "./ambientTransaction.ts";
import { appendsCommitted, takeAppended } from "./events/announceAppends.ts";
import type { StoredEvent } from "./events/types.ts";
import { CITUS_SESSION_OPTIONS, PLATFORM_SCOPE, tenantScope } from "./tenantScope.ts";
import type { Database, Db, Tx } from "./schema.ts";

export type { Db, Tx };
/** Either the root handle or a transaction: queries accept both. */
export type Queryable = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  backend: "pg" | "pglite";
  /** pg only: the schema Keyplane's tables live in, when not the connection's default. */
  schema?: string;
  /** pg only: the pool itself, for protocol flows kysely does not offer (the audit export's COPY). */
  pool?: pg.Pool;
  /** Runs a multi-statement SQL script (migrations) inside the given transaction. */
  execScript(trx: Tx, script: string): Promise<void>;
  /** LISTENs on a channel until the returned function is called: see Listener. */
  listen(channel: string, listener: Listener): Promise<() => Promise<void>>;
  /**
   * The names of the migrations applied (kysely_migration; none on a database never migrated), read
   * within timeoutMs or rejected: on PostgreSQL over a connection of its own, outside the pool, since
   * readiness must not queue behind the requests it judges.
   */
  probe(timeoutMs: number): Promise<string[]>;
  /** Connections now (for /metrics): pg's pool; PGlite is one connection, queued by its dialect. */
  poolStats?(): { total: number; idle?: number; waiting?: number; max: number };
  close(): Promise<void>;
}

export interface Listener {
  /** One NOTIFY payload, after the notifying transaction committed. */
  onNotify(payload: string): void;
  /** The LISTEN connection was lost and is back: notifications in between may be lost. */
  onGap(): void;
  /** The LISTEN connection failed (it is retried with backoff). */
  onError?(error: Error): void;
}

export interface DatabaseOptions {
  /** postgres:// URL; when absent, an embedded PGlite database is used. */
  url?: string;
  poolMax?: number;
  /** PGlite data directory; "memory://" for an in-memory database. */
  dataDir?: string;
  /**
   * An embedded database its caller opened and closes: the handle's close leaves it open (the test
   * suites hand one migrated instance from suite to suite instead of starting PGlite again).
   */
  embedded?: PGlite;
  /** pg only: schema to use as search_path (tests run each suite in a fresh schema). */
  schema?: string;
  /** pg only: how long a query may wait for a connection before it fails as unavailable (default 5000). */
  connectTimeoutMs?: number;
  /**
   * pg only: told when the server drops a pooled connection (restart, failover, terminate): idle ones
   * are replaced on next use; a query in flight on a checked-out one fails with the error.
   */
  onConnectionError?: (error: Error) => void;
}

// int8 (bigint) as number: sequences and counts stay far below 2^53.
const pgTypes = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.url) {
    const pool = new pg.Pool({
      ...connection(options),
      max: options.poolMax ?? 10,
      types: pgTypes,
      // While the database is unreachable a request waits this long at most, then answers UNAVAILABLE.
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    });
    // A connection the server drops is an 'error' event; unheard, it would end the process. pg-pool
    // listens only while a client is idle, so every client gets a listener of its own when it is
    // made (checked out or not, the export's COPY included): the query in flight fails with the
    // error, and the pool discards the client. The pool's own 'error' is the idle case.
    const connectionError = (error: Error) => options.onConnectionError?.(error);
    pool.on("connect", (client) => client.on("error", connectionError));
    pool.on("error", connectionError);
    const db = new Kysely<Database>({ dialect: withOneTransactionSupport(new PostgresDialect({ pool }), {}) });
    return {
      db,
      backend: "pg",
      schema: options.schema,
      pool,
      // Without parameters pg uses the simple protocol, which accepts several statements.
      execScript: async (trx, script) => {
        await sql.raw(script).execute(trx);
      },
      listen: sharedListen((channel, listener) => listenOnPostgres(options, channel, listener)),
      probe: (timeoutMs) => probePostgres(options, timeoutMs),
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: options.poolMax ?? 10 }),
      close: () => db.destroy(),
    };
  }
  const opened = options.embedded ?? (await openEmbedded(options.dataDir ?? "memory://"));
  // Dropped on close: a closed handle that is still referenced (a test's variable, say) must not keep
  // the database's WebAssembly memory (about 200 MB) alive.
  let pglite: PGlite | undefined = opened;
  const live = (): PGlite => {
    if (!pglite) throw new Error("the embedded database is closed");
    return pglite;
  };
  const dialect = new PGliteDialect(options.embedded ? withoutClose(opened) : opened);
  const db = new Kysely<Database>({ dialect: withOneTransactionSupport(dialect, { sendScript: async (script) => void (await live().exec(script)) }) });
  return {
    db,
    backend: "pglite",
    // PGlite has one session: exec() runs inside the transaction kysely opened on it.
    execScript: async (_trx, script) => {
      await live().exec(script);
    },
    // In-process: PGlite delivers a NOTIFY to its listeners when the transaction commits.
    listen: async (channel, listener) => {
      const unlisten = await live().listen(channel, (payload) => listener.onNotify(payload));
      return () => unlisten();
    },
    // One connection, queued: a probe waits behind the queries before it, for timeoutMs at most.
    probe: (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)));
      const query = sql
        .raw<{ name: string }>(APPLIED_MIGRATIONS)
        .execute(db)
        .then((r) => r.rows.map((row) => row.name), noMigrationTable);
      query.catch(() => {});
      return Promise.race([query, timeout]).finally(() => clearTimeout(timer));
    },
    poolStats: () => ({ total: 1, max: 1 }),
    close: async () => {
      await db.destroy();
      pglite = undefined;
      // kysely keeps its dialect, and the dialect its PGlite (the driver already let go of it).
      Object.assign(dialect, { pgLite: undefined });
    },
  };
}

async function openEmbedded(dataDir: string): Promise<PGlite> {
  if (!dataDir.startsWith("memory://")) mkdirSync(path.resolve(dataDir), { recursive: true });
  const opened = new PGlite(dataDir.startsWith("memory://") ? undefined : path.resolve(dataDir, "pgdata"));
  await opened.waitReady;
  return opened;
}

/** The instance as the dialect sees it, but whose close() (kysely's destroy) leaves it open for its owner. */
function withoutClose(pglite: PGlite): PGlite {
  return new Proxy(pglite, {
    get(target, key) {
      if (key === "close") return async () => {};
      const value: unknown = Reflect.get(target, key);
      // PGlite's methods use private fields: call them on the instance, not on the proxy.
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Runs fn in a transaction scoped to one tenant: row-level security sees only that tenant's rows.
 * Every tenant read and write goes through here.
 */
export function withTenant<T>(db: Db, tenantId: string, fn: (trx: Tx) => Promise<T>): Promise<T> {
  return scoped(db, tenantScope(tenantId), fn);
}

/** Runs fn in a transaction that may see every tenant: platform operators, rebuilds, sweeps. */
export function withPlatform<T>(db: Db, fn: (trx: Tx) => Promise<T>): Promise<T> {
  return scoped(db, PLATFORM_SCOPE, fn);
}

/**
 * One transaction whose scope travels with its BEGIN (one message on PostgreSQL: no round trip of its
 * own). What it appended is announced once it has committed (announceAppends.ts).
 */
async function scoped<T>(db: Db, scope: string, fn: (trx: Tx) => Promise<T>): Promise<T> {
  const bracket: TransactionBracket = { open: scope };
  let events: StoredEvent[] = [];
  const result = await withTransactionBracket(bracket, () =>
    db.transaction().execute(async (trx) => {
      const result = await fn(trx);
      events = takeAppended(trx);
      return result;
    }),
  );
  // Committed (inside runInOneTransaction: once the whole unit has ended).
  if (events.length && !afterTransaction(async () => appendsCommitted(db, events))) appendsCommitted(db, events);
  return result;
}

/**
 * Where and how every connection Keyplane opens connects. Its startup options are Citus' SET
 * propagation (tenantScope.ts), the schema when one is given, and whatever options the URL carries:
 * they leave the URL, since pg would let the URL's `options` replace the others.
 */
function connection(options: DatabaseOptions): { connectionString: string; options: string } {
  const url = new URL(options.url!);
  const fromUrl = url.searchParams.get("options");
  url.searchParams.delete("options");
  return {
    connectionString: fromUrl === null ? options.url! : url.toString(),
    options: [CITUS_SESSION_OPTIONS, options.schema ? `-c search_path=${options.schema}` : "", fromUrl ?? ""].filter(Boolean).join(" "),
  };
}

const APPLIED_MIGRATIONS = "select name from kysely_migration order by name";
/** A database never migrated has no kysely_migration table (42P01): nothing applied. */
const noMigrationTable = (error: unknown): string[] => {
  if ((error as { code?: string }).code === "42P01") return [];
  throw error;
};

/** The applied migrations, read on a connection of its own, connected and answered within timeoutMs, then closed. */
async function probePostgres(options: DatabaseOptions, timeoutMs: number): Promise<string[]> {
  const client = new pg.Client({
    ...connection(options),
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on("error", () => {}); // a connection lost while probing rejects the probe itself
  try {
    await client.connect();
    return await client.query<{ name: string }>(APPLIED_MIGRATIONS).then((r) => r.rows.map((row) => row.name), noMigrationTable);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * One LISTEN per channel, whoever listens in the process (the live feed and the authentication cache
 * share the append channel): each listener is told everything the channel hears.
 */
function sharedListen(open: (channel: string, listener: Listener) => Promise<() => Promise<void>>): DatabaseHandle["listen"] {
  const hubs = new Map<string, { listeners: Set<Listener>; opened: Promise<() => Promise<void>> }>();
  return async (channel, listener) => {
    let hub = hubs.get(channel);
    if (!hub) {
      const listeners = new Set<Listener>();
      const opened = open(channel, {
        onNotify: (payload) => listeners.forEach((l) => l.onNotify(payload)),
        onGap: () => listeners.forEach((l) => l.onGap()),
        onError: (error) => listeners.forEach((l) => l.onError?.(error)),
      });
      hubs.set(channel, (hub = { listeners, opened }));
      opened.catch(() => hubs.delete(channel));
    }
    const joined = hub;
    joined.listeners.add(listener);
    try {
      await joined.opened;
    } catch (error) {
      joined.listeners.delete(listener);
      throw error;
    }
    return async () => {
      if (!joined.listeners.delete(listener) || joined.listeners.size > 0) return;
      if (hubs.get(channel) === joined) hubs.delete(channel);
      await (await joined.opened)();
    };
  };
}

/**
 * One dedicated connection (outside the pool) that LISTENs. When it breaks (server restart, network,
 * pg_terminate_backend) it comes back with backoff, up to 30 s apart, and says so with onGap, since
 * notifications sent meanwhile are gone.
 */
async function listenOnPostgres(options: DatabaseOptions, channel: string, listener: Listener): Promise<() => Promise<void>> {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let delayMs = 250;

  async function connect(): Promise<void> {
    const next = new pg.Client(connection(options));
    next.on("notification", (message) => {
      if (message.channel === channel) listener.onNotify(message.payload ?? "");
    });
    next.on("error", (error) => lost(next, error));
    next.on("end", () => lost(next, new Error("LISTEN connection ended")));
    try {
      await next.connect();
      await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      await next.end().catch(() => {});
      throw error;
    }
    if (stopped) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
    delayMs = 250;
  }

  function lost(which: pg.Client, error: Error) {
    if (stopped || client !== which) return;
    client = undefined;
    listener.onError?.(error);
    which.end().catch(() => {});
    schedule();
  }

  function schedule() {
    if (stopped) return;
    retry = setTimeout(() => {
      connect().then(
        () => listener.onGap(),
        (error: Error) => {
          listener.onError?.(error);
          delayMs = Math.min(delayMs * 2, 30_000);
          schedule();
        },
      );
    }, delayMs);
    retry.unref();
  }

  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await client?.end().catch(() => {});
    client = undefined;
  };
}
