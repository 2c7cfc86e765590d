import { mkdirSync } from "node:fs";
import path from "node:path";
import { Kysely, PostgresDialect, sql, type Transaction } from "kysely";
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import { PGliteDialect } from "kysely-pglite-dialect";
import type { Database } from "./schema.ts";

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Either the root handle or a transaction: queries accept both. */
export type Queryable = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  backend: "pg" | "pglite";
  /** pg only: the schema Keyplane's tables live in, when not the connection's default. */
  schema?: string;
  /** Runs a multi-statement SQL script (migrations) inside the given transaction. */
  execScript(trx: Tx, script: string): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres:// URL; when absent, an embedded PGlite database is used. */
  url?: string;
  poolMax?: number;
  /** PGlite data directory; "memory://" for an in-memory database. */
  dataDir?: string;
  /** pg only: schema to use as search_path (tests run each suite in a fresh schema). */
  schema?: string;
  /** pg only: told when the server drops an idle pooled connection (it is replaced on next use). */
  onIdleConnectionError?: (error: Error) => void;
}

// int8 (bigint) as number: sequences and counts stay far below 2^53.
const pgTypes = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.url) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax ?? 10,
      types: pgTypes,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // An idle connection the server drops (restart, failover, terminate) is an 'error' event on the
    // pool; unheard, it would crash the process. The pool discards the client and opens a new one.
    pool.on("error", (error) => options.onIdleConnectionError?.(error));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      backend: "pg",
      schema: options.schema,
      // Without parameters pg uses the simple protocol, which accepts several statements.
      execScript: async (trx, script) => {
        await sql.raw(script).execute(trx);
      },
      close: () => db.destroy(),
    };
  }
  const dataDir = options.dataDir ?? "memory://";
  if (!dataDir.startsWith("memory://")) mkdirSync(path.resolve(dataDir), { recursive: true });
  const pglite = new PGlite(dataDir.startsWith("memory://") ? undefined : path.resolve(dataDir, "pgdata"));
  await pglite.waitReady;
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    backend: "pglite",
    // PGlite has one session: exec() runs inside the transaction kysely opened on it.
    execScript: async (_trx, script) => {
      await pglite.exec(script);
    },
    close: () => db.destroy(),
  };
}

/**
 * Runs fn in a transaction scoped to one tenant: row-level security sees only that tenant's rows.
 * Every tenant read and write goes through here.
 */
export function withTenant<T>(db: Db, tenantId: string, fn: (trx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('keyplane.tenant_id', ${tenantId}, true)`.execute(trx);
    return fn(trx);
  });
}

/** Runs fn in a transaction that may see every tenant: platform operators, rebuilds, sweeps. */
export function withPlatform<T>(db: Db, fn: (trx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('keyplane.platform', 'on', true)`.execute(trx);
    return fn(trx);
  });
}
