import type { Config } from "../config.ts";
import type { Keyplane } from "../main.ts";

/**
 * Runs an operator command against a Keyplane opened for it (no listener), then closes it. On PostgreSQL
 * without KEYPLANE_MIGRATE_ON_START it refuses a database with pending migrations rather than apply them.
 */
export async function withKeyplane(config: Config, fn: (kp: Keyplane) => Promise<number>): Promise<number> {
  const { createKeyplane } = await import("../main.ts");
  const { pendingMigrations } = await import("../store/migrate.ts");
  // Command-line work logs only warnings: its output is for the operator.
  const kp = await createKeyplane({ ...config, logLevel: config.logLevel === "info" ? "warn" : config.logLevel });
  try {
    if (kp.database.backend === "pg" && !config.migrateOnStart) {
      const pending = await pendingMigrations(kp.database);
      if (pending.length) throw new Error(`the database has pending migrations (${pending.join(", ")}); run: keyplane migrate`);
    }
    return await fn(kp);
  } finally {
    await kp.close();
  }
}
