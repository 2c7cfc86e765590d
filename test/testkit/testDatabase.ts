import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { openDatabase, type DatabaseHandle } from "../../src/store/db.ts";
import { migrateToLatest } from "../../src/store/migrate.ts";
import { releaseMemory } from "./memory.ts";

export const onPostgres = Boolean(process.env.TEST_DATABASE_URL);

/**
 * TEST_CITUS_WORKERS ("host:port,…") says that TEST_DATABASE_URL is a Citus coordinator with these
 * workers; TEST_ADMIN_DATABASE_URL is then a superuser URL of the coordinator (creating a database and
 * the citus extension needs one), while TEST_DATABASE_URL names the role Keyplane connects as.
 */
export const citusWorkers = (process.env.TEST_CITUS_WORKERS ?? "").split(",").filter(Boolean);
export const onCitus = onPostgres && citusWorkers.length > 0;

export interface ScratchDatabase {
  name: string;
  /** As Keyplane connects (TEST_DATABASE_URL's role). */
  url: string;
  /** As a superuser, for what a test inspects behind row-level security. */
  adminUrl: string;
  drop(): Promise<void>;
}

const withDatabase = (base: string, name: string): string => {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
};

/** A superuser URL of the test database `name` (TEST_ADMIN_DATABASE_URL's role, else TEST_DATABASE_URL's). */
export const adminUrlOf = (name: string): string => withDatabase(process.env.TEST_ADMIN_DATABASE_URL ?? process.env.TEST_DATABASE_URL!, name);

/**
 * A new, empty database (not migrated) in the PostgreSQL of TEST_DATABASE_URL, owned by its role. On
 * Citus it exists on the coordinator and every worker, with the extension and the workers registered,
 * so the tables Keyplane distributes have their shards on the workers.
 */
export async function createScratchDatabase(prefix = "kp_test", options: { template?: string } = {}): Promise<ScratchDatabase> {
  const base = process.env.TEST_DATABASE_URL!;
  const admin = process.env.TEST_ADMIN_DATABASE_URL ?? base;
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const owner = decodeURIComponent(new URL(base).username) || "postgres";
  const nodes = [admin, ...citusWorkers.map((worker) => Object.assign(new URL(admin), { host: worker }).toString())];
  const drop = async () => {
    for (const node of onCitus ? nodes : [admin]) await adminQuery(node, `drop database if exists ${name} with (force)`);
  };
  const scratch = { name, url: withDatabase(base, name), adminUrl: adminUrlOf(name), drop };
  if (!onCitus) {
    await adminQuery(admin, `create database ${name}${options.template ? ` template ${options.template}` : ""} owner "${owner}"`);
    return scratch;
  }
  try {
    for (const node of nodes) {
      await adminQuery(node, `create database ${name} owner "${owner}"`);
      await adminQuery(withDatabase(node, name), "create extension citus");
    }
    const coordinator = new URL(admin);
    const placement = [`select citus_set_coordinator_host('${coordinator.hostname}', ${Number(coordinator.port || 5432)})`];
    for (const worker of citusWorkers) {
      const [host, port] = worker.split(":");
      placement.push(`select citus_add_node('${host}', ${Number(port || 5432)})`);
    }
    // Fewer shards than production's 32: each suite distributes every table afresh.
    placement.push(`alter database ${name} set citus.shard_count = 4`);
    for (const statement of placement) await withWorkerConnections(() => adminQuery(withDatabase(admin, name), statement));
  } catch (error) {
    await drop().catch(() => {});
    throw error;
  }
  return scratch;
}

/**
 * A migrated database for one suite: in-memory PGlite by default, or a fresh database in the
 * PostgreSQL of TEST_DATABASE_URL, dropped again on close, so runs never collide. A database, not a
 * schema: kysely's migrator introspects every schema of its database, and a schema another suite
 * drops meanwhile makes that introspection fail.
 */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<DatabaseHandle & { schema?: string }> {
  // On Citus, suites set up one at a time: a database's setup and first DDL, run beside another
  // suite's, now and then fail with "tuple concurrently updated" (shared catalogs the extension
  // touches on every node).
  return onCitus ? oneAtATime(() => createDatabaseNow(options)) : createDatabaseNow(options);
}

async function createDatabaseNow(options: { migrate?: boolean }): Promise<DatabaseHandle & { schema?: string }> {
  const url = process.env.TEST_DATABASE_URL;
  let handle: DatabaseHandle & { schema?: string };
  let migrated = false;
  if (url) {
    // A suite that wants a migrated database clones the run's migrated template (plain PostgreSQL):
    // a copy of a few files instead of fourteen migrations per suite.
    const template = options.migrate !== false && !onCitus ? await migratedTemplate() : undefined;
    const scratch = await createScratchDatabase("kp_test", { template });
    migrated = template !== undefined;
    const inner = await openDatabase({ url: scratch.url, poolMax: 12 });
    handle = {
      ...inner,
      close: async () => {
        await inner.close();
        await scratch.drop();
      },
    };
  } else if (options.migrate !== false) {
    return leaseEmbedded();
  } else {
    const inner = await openDatabase({ dataDir: "memory://" });
    handle = {
      ...inner,
      close: async () => {
        await inner.close();
        releaseMemory();
      },
    };
  }
  if (options.migrate !== false && !migrated) await migrateToLatest(handle);
  return handle;
}

/**
 * Migrated embedded databases of this test process that no suite holds. Starting PGlite costs most of
 * a second and migrating it a third more, for each of some sixty suites and apps: a closed one is
 * reset to its just-migrated state instead (every table emptied, every sequence restarted, the
 * session as new) and handed to the next.
 */
const idleEmbedded: PGlite[] = [];

async function leaseEmbedded(): Promise<DatabaseHandle> {
  let pglite = idleEmbedded.pop();
  if (!pglite) {
    pglite = new PGlite();
    const migrating = await openDatabase({ embedded: pglite });
    await migrateToLatest(migrating);
    await migrating.close();
  }
  const leased = pglite;
  const inner = await openDatabase({ embedded: leased });
  // Listeners a suite left behind would hear the next suite's notifications.
  const unlisteners = new Set<() => Promise<void>>();
  let closed = false;
  return {
    ...inner,
    listen: async (channel, listener) => {
      const unlisten = await inner.listen(channel, listener);
      const once = async () => {
        if (unlisteners.delete(once)) await unlisten();
      };
      unlisteners.add(once);
      return once;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await inner.close();
      for (const unlisten of [...unlisteners]) await unlisten().catch(() => {});
      try {
        await resetEmbedded(leased);
        idleEmbedded.push(leased);
      } catch {
        await leased.close().catch(() => {});
      }
      releaseMemory();
    },
  };
}

/** Back to the state migrations leave: no rows (the migration tables aside), sequences from 1, a new session. */
async function resetEmbedded(pglite: PGlite): Promise<void> {
  if (pglite.closed) throw new Error("closed");
  // A transaction a suite left open (a killed request) ends here; outside one this only warns.
  await pglite.exec("rollback");
  const { rows: tables } = await pglite.query<{ name: string }>(
    `select format('%I.%I', schemaname, tablename) as name from pg_tables
     where schemaname = current_schema() and tablename not like 'kysely\\_migration%'`,
  );
  const { rows: sequences } = await pglite.query<{ name: string }>(
    `select format('%I.%I', schemaname, sequencename) as name from pg_sequences where schemaname = current_schema()`,
  );
  // The append-only tables refuse TRUNCATE through triggers, which a replica session does not fire.
  await pglite.exec(
    [
      "set session_replication_role = replica",
      `truncate ${tables.map((t) => t.name).join(", ")} restart identity cascade`,
      ...sequences.map((q) => `alter sequence ${q.name} restart`),
    ].join(";\n"),
  );
  // A new session's listens, advisory locks and temporary tables; not DISCARD ALL, whose RESET ALL
  // would also undo the search_path PGlite sets when it starts.
  await pglite.exec("reset session_replication_role; unlisten *; select pg_advisory_unlock_all(); discard temp; discard sequences");
}

const MIGRATIONS = fileURLToPath(new URL("../../migrations/", import.meta.url));
let template: Promise<string> | undefined;

/**
 * The migrated template database of these migrations (named by a hash of their files, so a changed
 * migration makes a new one and the stale ones are dropped): made once, by the first test process
 * that needs it, under a lock; migrated under a temporary name and renamed when done, so a template
 * that exists is complete. It stays between runs.
 */
function migratedTemplate(): Promise<string> {
  template ??= (async () => {
    const hash = createHash("sha256");
    for (const file of readdirSync(MIGRATIONS)
      .filter((f) => f.endsWith(".sql"))
      .sort())
      hash.update(file).update(readFileSync(MIGRATIONS + file));
    const name = `kp_template_${hash.digest("hex").slice(0, 16)}`;
    const admin = process.env.TEST_ADMIN_DATABASE_URL ?? process.env.TEST_DATABASE_URL!;
    return oneAtATime(async () => {
      const { rows } = await adminQuery(admin, "select datname from pg_database where datname like 'kp\\_template\\_%'");
      if (rows.some((r) => r.datname === name)) return name;
      for (const stale of rows) await adminQuery(admin, `drop database if exists ${stale.datname} with (force)`);
      const scratch = await createScratchDatabase("kp_template_new");
      try {
        const handle = await openDatabase({ url: scratch.url, poolMax: 2 });
        try {
          await migrateToLatest(handle);
        } finally {
          await handle.close();
        }
        await adminQuery(admin, `alter database ${scratch.name} rename to ${name}`);
      } catch (error) {
        await scratch.drop().catch(() => {});
        throw error;
      }
      return name;
    });
  })();
  return template;
}

/** Runs fn under a lock held on the cluster's coordinator, shared by every test process. */
async function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const lock = new pg.Client({ connectionString: process.env.TEST_ADMIN_DATABASE_URL ?? process.env.TEST_DATABASE_URL });
  await lock.connect();
  try {
    await lock.query("select pg_advisory_lock(hashtext('keyplane test database setup'))");
    return await fn();
  } finally {
    await lock.end();
  }
}

/**
 * Runs a statement that needs a fresh connection from the coordinator to a worker (citus_add_node),
 * again while the worker has none to give: the other suites' open databases can hold all of the
 * worker's connections for a moment ("failure on connection marked as essential"), and they give
 * them back as their queries end.
 */
async function withWorkerConnections<T>(run: () => Promise<T>, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= attempts || !/connection marked as essential|remaining connection slots|too many clients/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
    }
  }
}

export async function adminQuery(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}
