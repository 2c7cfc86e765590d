import { randomBytes } from "node:crypto";
import pg from "pg";
import { openDatabase, type DatabaseHandle } from "../../src/store/db.ts";
import { migrateToLatest } from "../../src/store/migrate.ts";

export const onPostgres = Boolean(process.env.TEST_DATABASE_URL);

/**
 * A migrated database for one suite: in-memory PGlite by default, or a fresh schema in the
 * PostgreSQL of TEST_DATABASE_URL, dropped again on close, so runs never collide.
 */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<DatabaseHandle & { schema?: string }> {
  const url = process.env.TEST_DATABASE_URL;
  let handle: DatabaseHandle & { schema?: string };
  if (url) {
    const schema = `kp_test_${randomBytes(6).toString("hex")}`;
    await adminQuery(url, `create schema ${schema}`);
    const inner = await openDatabase({ url, schema, poolMax: 12 });
    handle = {
      ...inner,
      close: async () => {
        await inner.close();
        await adminQuery(url, `drop schema ${schema} cascade`);
      },
    };
  } else {
    handle = await openDatabase({ dataDir: "memory://" });
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
