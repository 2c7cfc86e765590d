import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Migrator, sql, type Migration, type MigrationProvider, type MigrationResultSet } from "kysely";
import type { DatabaseHandle, Tx } from "./db.ts";
import { distributeOnCitus } from "./citus.ts";
import { PLATFORM_SCOPE } from "./tenantScope.ts";

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url));

/** Plain SQL files in migrations/, applied in name order by kysely's Migrator (one transaction each). */
class SqlFileMigrationProvider implements MigrationProvider {
  constructor(private readonly handle: DatabaseHandle) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const script = await readFile(MIGRATIONS_DIR + file, "utf8");
      migrations[file.replace(/\.sql$/, "")] = {
        up: async (db) => {
          // Migrations see every tenant's rows (data migrations must not be filtered by RLS).
          await sql.raw(PLATFORM_SCOPE).execute(db);
          await this.handle.execScript(db as Tx, script);
        },
      };
    }
    return migrations;
  }
}

/**
 * kysely looks for its bookkeeping tables in every schema, so on PostgreSQL it is pinned to the
 * schema Keyplane uses (other schemas of the same database may hold other Keyplanes' tables).
 */
async function migratorFor(handle: DatabaseHandle): Promise<Migrator> {
  const schema =
    handle.schema ?? (handle.backend === "pg" ? (await sql<{ s: string }>`select current_schema() as s`.execute(handle.db)).rows[0]!.s : undefined);
  return new Migrator({ db: handle.db, provider: new SqlFileMigrationProvider(handle), ...(schema ? { migrationTableSchema: schema } : {}) });
}

export class MigrationError extends Error {}

/**
 * Applies the pending migrations, then on Citus places the tables not yet placed (citus.ts). Returns
 * what it did: the migrations applied, then "citus <table>: <placement>" for each placement.
 */
export async function migrateToLatest(handle: DatabaseHandle): Promise<string[]> {
  const { error, results } = await (await migratorFor(handle)).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new MigrationError(`migration ${failed} failed: ${(error as Error).message}`);
  }
  const applied = (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
  const placed = await distributeOnCitus(handle).catch((cause: unknown) => {
    throw new MigrationError(`distributing the tables on Citus failed: ${(cause as Error).message}`);
  });
  return [...applied, ...placed.map((p) => `citus ${p}`)];
}

/** The names of Keyplane's migrations (the files in migrations/), in order. */
export async function migrationNames(): Promise<string[]> {
  return (await readdir(MIGRATIONS_DIR))
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((f) => f.replace(/\.sql$/, ""));
}

/** Names of migrations not yet applied; empty when the database is current. */
export async function pendingMigrations(handle: DatabaseHandle): Promise<string[]> {
  const all = await (await migratorFor(handle)).getMigrations();
  return all.filter((m) => !m.executedAt).map((m) => m.name);
}

export type { MigrationResultSet };
