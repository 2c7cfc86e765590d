import type { Logger } from "../logger.ts";
import type { DatabaseHandle } from "../store/db.ts";
import { migrationNames } from "../store/migrate.ts";

export interface Readiness {
  ok: boolean;
  checks: Record<string, string>;
}

/** How long a readiness probe may take before it answers "not ready" (ops/k8s's probe gives up after 3 s). */
const CHECK_TIMEOUT_MS = 2000;

/**
 * /readyz: can this process serve now? One query, on a connection of its own (not the pool, which a
 * burst of requests may hold: readiness must not wait behind them) and within a short timeout,
 * reads the applied migrations: an answer says the database is reachable, its content whether it is
 * current. Probes arriving together share one check.
 */
export function createReadinessCheck(database: Pick<DatabaseHandle, "probe">, logger: Logger): () => Promise<Readiness> {
  let running: Promise<Readiness> | undefined;

  async function check(): Promise<Readiness> {
    let applied: Set<string>;
    try {
      applied = new Set(await database.probe(CHECK_TIMEOUT_MS));
    } catch (error) {
      logger.debug({ err: (error as Error).message }, "readiness: the database did not answer");
      return { ok: false, checks: { database: "unreachable" } };
    }
    const pending = (await migrationNames()).filter((name) => !applied.has(name));
    const checks = { database: "ok", migrations: pending.length ? `pending: ${pending.join(", ")}` : "ok" };
    return { ok: pending.length === 0, checks };
  }

  return () => (running ??= check().finally(() => (running = undefined)));
}
