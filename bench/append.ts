/**
 * npm run bench:append
 *
 * Append throughput of the real write path against a baseline measured in the same run:
 *   A  one event per transaction through withTenant + appendEvents (head lock, version check,
 *      content + chain hash, insert, head update, inline projection), 8 writers, 100 tenants;
 *   B  the same number of plain autocommit INSERTs of an equal row (precomputed) into a bare
 *      table (primary key only: no other index, no trigger, no RLS), 8 writers.
 *   C  with CITUS_URL (a Citus coordinator, as Keyplane's role): A again, on Citus, in a schema of
 *      its own that `migrate` distributes (append delegated to the worker holding the tenant).
 * All are warmed up, then run alternately BENCH_ROUNDS times; the best run of each counts. Then the
 * database round trips of one append transaction (BEGIN and COMMIT included) are counted on A and C
 * by the store's own meter (src/store/roundTrips.ts), mean of 20 sequential appends. (Commands a
 * Citus coordinator sends on to its workers are not counted.)
 * Target: A/B >= 0.5. Always exits 0 once measured (a benchmark, not a test); 2 without DATABASE_URL.
 *
 * Environment: DATABASE_URL (required), CITUS_URL (optional), BENCH_APPENDS (default 20000),
 * BENCH_WRITERS (default 8), BENCH_TENANTS (default 100), BENCH_ROUNDS (default 2), BENCH_WARMUP
 * (default 1000).
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import { createTenant } from "../src/app/tenants.ts";
import { eventMetadata, systemActor } from "../src/auth/actor.ts";
import { AccessTokenIssued } from "../src/domain/session/events.ts";
import { openDatabase, withTenant, type DatabaseHandle, type Db } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { chainHash, contentHash, genesisHash } from "../src/store/events/hashing.ts";
import type { EventMetadata } from "../src/store/events/types.ts";
import { migrateToLatest } from "../src/store/migrate.ts";
import { createBenchDatabase, createBenchSchema, type BenchDatabase } from "./benchDatabase.ts";
import { intEnv } from "./benchEnv.ts";
import { roundTripsOf } from "./roundTrips.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("bench:append needs a PostgreSQL: set DATABASE_URL, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:append");
  process.exit(2);
}
const serverUrl: string = url;
const citusUrl = process.env.CITUS_URL;

const APPENDS = intEnv("BENCH_APPENDS", 20_000);
const WRITERS = intEnv("BENCH_WRITERS", 8);
const TENANTS = intEnv("BENCH_TENANTS", 100);
const ROUNDS = intEnv("BENCH_ROUNDS", 2);
const WARMUP = intEnv("BENCH_WARMUP", 1_000, 0);
const TARGET = 0.5;

const tenantIds = Array.from({ length: TENANTS }, (_, i) => `bench-${String(i).padStart(3, "0")}`);
const metadata: EventMetadata = eventMetadata(systemActor("bench:append"), { requestId: "bench-append" });
const expiresAt = new Date(Date.now() + 3_600_000).toISOString();

/** The event A appends: has an inline projection (access_tokens), so its cost is included. */
const tokenIssued = () =>
  AccessTokenIssued({ tokenId: randomUUID(), subject: "svc:bench", kind: "service", roles: ["service"], scopes: ["credentials:read"], expiresAt, issuedVia: "api" });


/** Set by SIGINT/SIGTERM: writers stop taking jobs, and the run unwinds through its cleanup. */
let interrupted: NodeJS.Signals | undefined;

/** Runs `count` jobs from `writers` concurrent loops; returns events per second. */
async function drive(count: number, writers: number, job: (i: number) => Promise<unknown>): Promise<{ rate: number; seconds: number }> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = next++; i < count && !interrupted; i = next++) await job(i);
    }),
  );
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  const seconds = (performance.now() - started) / 1000;
  return { rate: count / seconds, seconds };
}

// A: the real path. Consecutive jobs go to consecutive tenants, so the 8 writers rarely share a head lock.
// The decided events (what a use case hands to the store) are made before the clock starts.
type AppendInput = { streamId: string; event: ReturnType<typeof tokenIssued> };
const appendInputs = (n: number): AppendInput[] => Array.from({ length: n }, () => ({ streamId: randomUUID(), event: tokenIssued() }));

function appendJob(db: Db, inputs: AppendInput[]) {
  return (i: number) => {
    const tenantId = tenantIds[i % TENANTS]!;
    const { streamId, event } = inputs[i]!;
    return withTenant(db, tenantId, (trx) => appendEvents(trx, { tenantId, streamType: "access_token", streamId, expectedVersion: 0, events: [event], metadata }));
  };
}

// B: an equal row, every value precomputed, one autocommit INSERT each.
type PlainRow = [string, number, string, string, number, string, string, number, string, string, string, string, string];
let plainSeq = 0;
function plainRows(n: number): PlainRow[] {
  const metadataJson = JSON.stringify(metadata);
  return Array.from({ length: n }, () => {
    const tenantId = "bench-plain";
    const seq = ++plainSeq;
    const streamId = randomUUID();
    const eventId = randomUUID();
    const event = tokenIssued();
    const occurredAt = new Date().toISOString();
    const content = contentHash({ eventId, tenantId, streamType: "access_token", streamId, streamVersion: 1, type: event.type, schemaVersion: 1, data: event.data, metadata, occurredAt });
    const chain = chainHash(genesisHash(tenantId), seq, content);
    return [tenantId, seq, "access_token", streamId, 1, eventId, event.type, 1, JSON.stringify(event.data), metadataJson, occurredAt, content, chain];
  });
}

function plainJob(db: Db, rows: PlainRow[]) {
  return (i: number) => {
    const r = rows[i]!;
    return sql`insert into bench_plain (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, occurred_at, content_hash, chain_hash)
      values (${r[0]}, ${r[1]}, ${r[2]}, ${r[3]}, ${r[4]}, ${r[5]}, ${r[6]}, ${r[7]}, ${r[8]}, ${r[9]}, ${r[10]}, ${r[11]}, ${r[12]})`.execute(db);
  };
}

const fmtRate = (n: number) => Math.round(n).toLocaleString("en-US");

/** A migrated store with the bench's tenants, ready for appends. */
async function prepare(handle: DatabaseHandle): Promise<void> {
  await migrateToLatest(handle);
  const actor = systemActor("bench:append");
  for (const id of tenantIds) {
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
    await createTenant({ db: handle.db }, actor, { id, name: `Bench ${id}`, tier: "free" });
  }
}

/** Round trips per append transaction (mean of 20 sequential ones), counted by the store's meter. */
async function roundTripsPerAppend(db: Db): Promise<number> {
  const inputs = appendInputs(20);
  const job = appendJob(db, inputs);
  const trips = await roundTripsOf(async () => {
    for (let i = 0; i < inputs.length; i++) await job(i);
  });
  return trips / inputs.length;
}

async function main(): Promise<void> {
  let handle: DatabaseHandle | undefined;
  let scratch: BenchDatabase | undefined;
  let citus: DatabaseHandle | undefined;
  let citusScratch: (BenchDatabase & { schema: string }) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    console.error(`\n${signal}: stopping, then dropping the scratch database`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    scratch = await createBenchDatabase("append", serverUrl);
    handle = await openDatabase({ url: scratch.url, poolMax: WRITERS + 2 });
    const db = handle.db;
    await prepare(handle);
    if (citusUrl) {
      citusScratch = await createBenchSchema("append", citusUrl);
      citus = await openDatabase({ url: citusUrl, schema: citusScratch.schema, poolMax: WRITERS + 2 });
      await prepare(citus);
    }
    // Same columns, types and defaults as events; primary key only (LIKE copies no index, trigger or policy).
    await sql`create table bench_plain (like events including defaults, primary key (tenant_id, tenant_seq))`.execute(db);

    const { rows: info } = await sql<{ version: string; sync: string }>`select current_setting('server_version') as version, current_setting('synchronous_commit') as sync`.execute(db);
    console.log(`bench:append  PostgreSQL ${info[0]!.version} (synchronous_commit=${info[0]!.sync}), database ${new URL(scratch.url).pathname.slice(1)}`);
    if (citus) console.log(`  C on Citus at ${new URL(citusUrl!).host}, schema ${citusScratch!.schema}`);
    console.log(`  ${APPENDS} events per run, ${WRITERS} writers, ${TENANTS} tenants, ${ROUNDS} rounds of A/B${citus ? "/C" : ""}, warm-up ${WARMUP}\n`);

    if (WARMUP > 0) {
      await drive(WARMUP, WRITERS, appendJob(db, appendInputs(WARMUP)));
      await drive(WARMUP, WRITERS, plainJob(db, plainRows(WARMUP)));
      if (citus) await drive(WARMUP, WRITERS, appendJob(citus.db, appendInputs(WARMUP)));
    }

    const results = { A: [] as number[], B: [] as number[], C: [] as number[] };
    for (let round = 1; round <= ROUNDS; round++) {
      const inputs = appendInputs(APPENDS);
      const a = await drive(APPENDS, WRITERS, appendJob(db, inputs));
      results.A.push(a.rate);
      const rows = plainRows(APPENDS);
      const b = await drive(APPENDS, WRITERS, plainJob(db, rows));
      results.B.push(b.rate);
      let cLine = "";
      if (citus) {
        const c = await drive(APPENDS, WRITERS, appendJob(citus.db, appendInputs(APPENDS)));
        results.C.push(c.rate);
        cLine = `   C ${fmtRate(c.rate)} events/s (${c.seconds.toFixed(2)} s)   C/A ${(c.rate / a.rate).toFixed(3)}`;
      }
      console.log(`  round ${round}: A ${fmtRate(a.rate)} events/s (${a.seconds.toFixed(2)} s)   B ${fmtRate(b.rate)} rows/s (${b.seconds.toFixed(2)} s)   A/B ${(a.rate / b.rate).toFixed(3)}${cLine}`);
    }

    const { rows: counts } = await sql<{ n: number }>`select count(*)::int as n from events where event_type = 'access_token.issued'`.execute(db);
    const expected = WARMUP + APPENDS * ROUNDS;
    if (counts[0]!.n !== expected) throw new Error(`expected ${expected} appended events, found ${counts[0]!.n}`);

    const bestA = Math.max(...results.A);
    const bestB = Math.max(...results.B);
    const ratio = bestA / bestB;
    const rows: [string, string][] = [
      ["A appendEvents (1 event/tx, hash chain, projection)", `${fmtRate(bestA)} events/s`],
      ["B plain INSERT (autocommit, bare table)", `${fmtRate(bestB)} events/s`],
      ["ratio A/B", ratio.toFixed(3)],
      ["target", `>= ${TARGET}  ${ratio >= TARGET ? "PASS" : "BELOW TARGET"}`],
    ];
    rows.push(["A round trips per append transaction", (await roundTripsPerAppend(db)).toFixed(1)]);
    if (citus) {
      const bestC = Math.max(...results.C);
      rows.push(
        ["C appendEvents on Citus (2 nodes, shards on the worker)", `${fmtRate(bestC)} events/s`],
        ["ratio C/A (Citus overhead)", (bestC / bestA).toFixed(3)],
        ["ratio C/B", (bestC / bestB).toFixed(3)],
        ["C round trips per append transaction", (await roundTripsPerAppend(citus.db)).toFixed(1)],
      );
    }
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    const line = `  +${"-".repeat(w0 + 2)}+${"-".repeat(w1 + 2)}+`;
    console.log(`\n  best of ${ROUNDS} runs each\n${line}`);
    for (const [k, v] of rows) console.log(`  | ${k.padEnd(w0)} | ${v.padStart(w1)} |`);
    console.log(line);
  } finally {
    await handle?.close().catch(() => {});
    await scratch?.drop();
    await citus?.close().catch(() => {});
    await citusScratch?.drop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    if (interrupted) process.exit(130);
    console.error("bench:append failed:", error);
    process.exit(1);
  },
);
