import { randomBytes } from "node:crypto";
import pg from "pg";

export interface BenchDatabase {
  /** The scratch database's URL on the same server. */
  url: string;
  /** Drops it, closing whatever connections are left (a bench that failed half-way may hold some). */
  drop(): Promise<void>;
}

/** A scratch database of the bench's own on the PostgreSQL server `serverUrl` points at. */
export async function createBenchDatabase(bench: string, serverUrl: string): Promise<BenchDatabase> {
  const name = `kp_bench_${bench}_${randomBytes(4).toString("hex")}`;
  await adminQuery(serverUrl, `create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => adminQuery(serverUrl, `drop database if exists ${name} with (force)`).catch((error) => console.error(`could not drop ${name}:`, error)),
  };
}

/**
 * A scratch schema of the bench's own in the database `url` points at, for a role that may not create
 * databases (Keyplane's owner role on a Citus cluster); dropped with everything in it.
 */
export async function createBenchSchema(bench: string, url: string): Promise<BenchDatabase & { schema: string }> {
  const schema = `kp_bench_${bench}_${randomBytes(4).toString("hex")}`;
  await adminQuery(url, `create schema ${schema}`);
  return {
    url,
    schema,
    drop: () => adminQuery(url, `drop schema if exists ${schema} cascade`).catch((error) => console.error(`could not drop schema ${schema}:`, error)),
  };
}

/** On DATABASE_URL's server when it is set; undefined when it is not (the bench runs on embedded PGlite). */
export async function benchDatabaseFromEnv(bench: string): Promise<BenchDatabase | undefined> {
  const serverUrl = process.env.DATABASE_URL;
  return serverUrl ? createBenchDatabase(bench, serverUrl) : undefined;
}

async function adminQuery(serverUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
