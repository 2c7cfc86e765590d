import { randomBytes } from "node:crypto";
import pg from "pg";
import { openDatabase, type DatabaseHandle } from "../../src/store/db.ts";
import { migrateToLatest } from "../../src/store/migrate.ts";
import { releaseMemory } from "./memory.ts";

export const onPostgres = Boolean(process.env.TEST_DATABASE_URL);

/**
 * A migrated database for one suite: in-memory PGlite by default, or a fresh database in the
 * PostgreSQL of TEST_DATABASE_URL, dropped again on close, so runs never collide. A database, not a
 * schema: kysely's migrator introspects every schema of its database, and a schema another suite
 * drops meanwhile makes that introspection fail.
 */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<DatabaseHandle & { schema?: string }> {
  const url = process.env.TEST_DATABASE_URL;
  let handle: DatabaseHandle & { schema?: string };
  if (url) {
    const name = `kp_test_${randomBytes(6).toString("hex")}`;
    await adminQuery(url, `create database ${name}`);
    const own = new URL(url);
    own.pathname = `/${name}`;
    const inner = await openDatabase({ url: own.toString(), poolMax: 12 });
    handle = {
      ...inner,
      close: async () => {
        await inner.close();
        await adminQuery(url, `drop database ${name} with (force)`);
      },
    };
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
  if (options.migrate !== false) await migrateToLatest(handle);
  return handle;
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
