/**
 * npm run bench:rebuild
 *
 * `keyplane projections rebuild` of a log of BENCH_EVENTS events (default 200,000), against a
 * baseline measured in the same run on the same database:
 *   R  rebuildProjections, as the CLI runs it: the read tables emptied, the whole log replayed page
 *      by page into them (each page's projection writes in one round trip, consecutive inserts as
 *      one multi-row INSERT), the cross-tenant read model derived, in one transaction;
 *   B  reading the same log in the same pages, projecting nothing: what the replay costs at least.
 * The log is written first through the real write path (appendEvents with group commit, 16 writers,
 * BENCH_TENANTS tenants), a mix of what a running Keyplane records: access tokens issued; agents
 * created, updated and brought online (three events in one append); tasks dispatched, claimed and
 * completed (three in one); security events without a read model. Then every read table is
 * fingerprinted (row count and an md5 over its sorted rows), rebuilt, and fingerprinted again: they
 * must be equal. Prints events/s of R and B and R/B; the goal (issue 17) is R >= 20,000 events/s.
 * Always exits 0 once measured (a benchmark, not a test); 2 without DATABASE_URL.
 *
 * Environment: DATABASE_URL (required), BENCH_EVENTS (default 200000), BENCH_TENANTS (default 20).
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import { rebuildProjections } from "../src/app/rebuildProjections.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { AgentCreated, AgentOnline, AgentUpdated } from "../src/domain/agent/events.ts";
import { AccessDenied } from "../src/domain/security/events.ts";
import { AccessTokenIssued } from "../src/domain/session/events.ts";
import { TaskClaimed, TaskCompleted, TaskDispatched } from "../src/domain/task/events.ts";
import { openDatabase, withPlatform, type DatabaseHandle, type Db } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import type { EventMetadata } from "../src/store/events/types.ts";
import { migrateToLatest } from "../src/store/migrate.ts";
import { PROJECTED_TABLES } from "../src/store/schema.ts";
import { createBenchDatabase, type BenchDatabase } from "./benchDatabase.ts";
import { intEnv } from "./benchEnv.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("bench:rebuild needs a PostgreSQL: set DATABASE_URL, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:rebuild");
  process.exit(2);
}
const EVENTS = intEnv("BENCH_EVENTS", 200_000);
const TENANTS = intEnv("BENCH_TENANTS", 20);
const WRITERS = 16;
const GOAL = 20_000;
const PAGE = 1000;

const metadata: EventMetadata = { actor: { subject: "bench:rebuild", kind: "system", roles: [] }, requestId: "bench-rebuild" };
const tenantIds = Array.from({ length: TENANTS }, (_, i) => `rebuild-${String(i).padStart(3, "0")}`);

/** One unit of the mix: 4 appends, 8 events. */
async function unit(db: Db, u: number): Promise<void> {
  const tenantId = tenantIds[u % TENANTS]!;
  const now = new Date().toISOString();
  const agentId = randomUUID();
  const taskId = randomUUID();
  const agent = { tenantId, agentId, agentName: `agent-${u}`, timestamp: now };
  const append = (streamType: string, streamId: string, events: Parameters<typeof appendEvents>[1]["events"], expectedVersion: number | "any" = 0) =>
    appendEvents(db, { tenantId, streamType, streamId, expectedVersion, events, metadata, occurredAt: new Date() });
  await Promise.all([
    append("access_token", randomUUID(), [
      AccessTokenIssued({
        tokenId: randomUUID(),
        subject: `svc-${u % 50}`,
        kind: "service",
        roles: ["service"],
        scopes: [],
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        issuedVia: "api",
      }),
    ]),
    append("agent", agentId, [
      AgentCreated({ ...agent, version: 1, type: "coder", config: { model: "m", n: u }, tags: ["bench", `t${u % 7}`], ephemeral: false }),
      AgentUpdated({ ...agent, version: 2, changed: ["config"], type: "coder", config: { model: "m2", n: u }, tags: ["bench"] }),
      AgentOnline({ ...agent, version: 2 }),
    ]),
    append("task", taskId, [
      TaskDispatched({ taskId, agentId, kind: "bench", payload: { n: u }, timeoutSeconds: 60, deadlineAt: new Date(Date.now() + 60_000).toISOString() }),
      TaskClaimed({ taskId, agentId }),
      TaskCompleted({ taskId, result: { ok: true, n: u } }),
    ]),
    append("security", "access.denied", [AccessDenied({ level: "info", status: "denied", reason: "bench" })], "any"),
  ]);
}

/** Row count and an md5 over the sorted rows of every read table. */
function fingerprint(db: Db): Promise<Record<string, string>> {
  return withPlatform(db, async (trx) => {
    const out: Record<string, string> = {};
    for (const table of PROJECTED_TABLES) {
      const { rows } = await sql<{
        n: number;
        md5: string | null;
      }>`select count(*)::int as n, md5(string_agg(t::text, '|' order by t::text)) as md5 from ${sql.table(table)} t`.execute(trx);
      out[table] = `${rows[0]!.n} rows ${rows[0]!.md5 ?? "-"}`;
    }
    return out;
  });
}

/** B: the log read in the rebuild's pages, nothing projected. */
async function readLog(db: Db): Promise<number> {
  return withPlatform(db, async (trx) => {
    let n = 0;
    let cursor: { tenantId: string; seq: number } | undefined;
    for (;;) {
      let q = trx.selectFrom("events").selectAll();
      if (cursor) q = q.where((eb) => eb(eb.refTuple("tenant_id", "tenant_seq"), ">", eb.tuple(cursor!.tenantId, cursor!.seq)));
      const rows = await q.orderBy("tenant_id").orderBy("tenant_seq").limit(PAGE).execute();
      if (rows.length === 0) return n;
      n += rows.length;
      const last = rows[rows.length - 1]!;
      cursor = { tenantId: last.tenant_id, seq: Number(last.tenant_seq) };
    }
  });
}

async function main(): Promise<void> {
  let scratch: BenchDatabase | undefined;
  let handle: DatabaseHandle | undefined;
  try {
    scratch = await createBenchDatabase("rebuild", url!);
    handle = await openDatabase({ url: scratch.url, poolMax: WRITERS + 2 });
    const db = handle.db;
    await migrateToLatest(handle);
    for (const id of tenantIds) await createTenant({ db, now: () => new Date() }, systemActor("bench:rebuild"), { id, name: id, tier: "enterprise" });

    const units = Math.ceil(EVENTS / 8);
    const writing = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: WRITERS / 4 }, async () => {
        for (let u = next++; u < units; u = next++) {
          await unit(db, u);
          if (u % 2500 === 0) process.stderr.write(`\r  writing the log: ${u * 8}/${units * 8} events`);
        }
      }),
    );
    const { rows: count } = await sql<{ n: number }>`select count(*)::int as n from events`.execute(db);
    const total = count[0]!.n;
    console.error(`\r  wrote ${total} events through appendEvents in ${((performance.now() - writing) / 1000).toFixed(1)} s`);
    await sql`vacuum analyze`.execute(db);

    const live = await fingerprint(db);
    let started = performance.now();
    const read = await readLog(db);
    const readSeconds = (performance.now() - started) / 1000;

    started = performance.now();
    const { events } = await rebuildProjections(db, (done, all) => {
      if (done % 20_000 < PAGE || done === all) process.stderr.write(`\r  rebuilding: ${done}/${all}`);
    });
    const rebuildSeconds = (performance.now() - started) / 1000;
    process.stderr.write("\n");
    const rebuilt = await fingerprint(db);
    const different = PROJECTED_TABLES.filter((t) => live[t] !== rebuilt[t]);

    const R = events / rebuildSeconds;
    const B = read / readSeconds;
    console.log(`bench:rebuild  ${total} events, ${TENANTS} tenants, pages of ${PAGE}`);
    for (const table of PROJECTED_TABLES)
      console.log(`  ${table.padEnd(28)} ${rebuilt[table]}${live[table] === rebuilt[table] ? "" : `  (live: ${live[table]})`}`);
    const rows: [string, string][] = [
      ["R rebuild (replay into the read tables)", `${Math.round(R).toLocaleString("en-US")} events/s (${rebuildSeconds.toFixed(2)} s)`],
      ["B read the log in the same pages", `${Math.round(B).toLocaleString("en-US")} events/s (${readSeconds.toFixed(2)} s)`],
      ["ratio R/B", (R / B).toFixed(3)],
      ["goal R >= 20,000 events/s", R >= GOAL ? "PASS" : "BELOW GOAL"],
      ["rebuilt tables equal the live ones", different.length === 0 ? "yes" : `NO: ${different.join(", ")}`],
    ];
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    const line = `  +${"-".repeat(w0 + 2)}+${"-".repeat(w1 + 2)}+`;
    console.log(line);
    for (const [k, v] of rows) console.log(`  | ${k.padEnd(w0)} | ${v.padStart(w1)} |`);
    console.log(line);
    if (different.length) process.exitCode = 1;
  } finally {
    await handle?.close().catch(() => {});
    await scratch?.drop();
  }
}

main().catch((error) => {
  console.error("bench:rebuild failed:", error);
  process.exit(1);
});
