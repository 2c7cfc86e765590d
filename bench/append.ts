/**
 * npm run bench:append
 *
 * Append throughput of the real write path against a baseline measured in the same run, BENCH_WRITERS
 * concurrent writers (default 8):
 *   B  plain autocommit INSERTs of an equal row (precomputed) into a bare table (primary key only: no
 *      other index, no trigger, no RLS): the baseline;
 *   S  appendEvents, each append alone: one statement committing on its own (tenant scope, head lock,
 *      version check, content + chain hash, insert, inline projection), 100 tenants;
 *   G  the same with group commit (appendQueue.ts): appends arriving while one is in flight share the
 *      next statement and commit;
 *   H  G with every append on one hot tenant;
 *   C  with CITUS_URL (a Citus coordinator, as Keyplane's role): S on Citus, in a schema of its own
 *      that `migrate` distributes (each append delegated to the worker holding the tenant).
 * All are warmed up, then run alternately BENCH_ROUNDS times; the best run of each counts. Then the
 * database round trips per append, counted by the store's own meter (src/store/roundTrips.ts): a lone
 * append (goal 1), and per event of G's 8 writers (goal < 1). (Commands a Citus coordinator sends on
 * to its workers are not counted.)
 * Goals (issue 17): S/B >= 0.5, G/B >= 1.0, H >= 1,500 appends/s. Always exits 0 once measured (a
 * benchmark, not a test); 2 without DATABASE_URL.
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
import { openDatabase, type DatabaseHandle, type Db } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { appendQueue } from "../src/store/events/appendQueue.ts";
import { chainHash, contentHash, genesisHash } from "../src/audit/hashing.ts";
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
const GOALS = { single: 0.5, group: 1.0, hot: 1500 };

const tenantIds = Array.from({ length: TENANTS }, (_, i) => `bench-${String(i).padStart(3, "0")}`);
const metadata: EventMetadata = eventMetadata(systemActor("bench:append"), { requestId: "bench-append" });
const expiresAt = new Date(Date.now() + 3_600_000).toISOString();

/** The event A appends: has an inline projection (access_tokens), so its cost is included. */
const tokenIssued = () =>
  AccessTokenIssued({
    tokenId: randomUUID(),
    subject: "svc:bench",
    kind: "service",
    roles: ["service"],
    scopes: ["credentials:read"],
    expiresAt,
    issuedVia: "api",
  });

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

// S, G, H: the real path. Consecutive jobs go to consecutive tenants, so the 8 writers rarely share a
// head lock (but for H). The decided events (what a use case hands to the store) are made before the clock starts.
type AppendInput = { streamId: string; event: ReturnType<typeof tokenIssued> };
const appendInputs = (n: number): AppendInput[] => Array.from({ length: n }, () => ({ streamId: randomUUID(), event: tokenIssued() }));

function appendJob(db: Db, inputs: AppendInput[], opts: { groupCommit: boolean; hot?: boolean }) {
  return (i: number) => {
    appendQueue(db).groupCommit = opts.groupCommit;
    const tenantId = opts.hot ? tenantIds[0]! : tenantIds[i % TENANTS]!;
    const { streamId, event } = inputs[i]!;
    return appendEvents(db, { tenantId, streamType: "access_token", streamId, expectedVersion: 0, events: [event], metadata, occurredAt: new Date() });
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
    const content = contentHash({
      eventId,
      tenantId,
      streamType: "access_token",
      streamId,
      streamVersion: 1,
      type: event.type,
      schemaVersion: 1,
      data: event.data,
      metadata,
      occurredAt,
    });
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
    await createTenant({ db: handle.db, now: () => new Date() }, actor, { id, name: `Bench ${id}`, tier: "free" });
  }
}

/** Round trips per append, counted by the store's meter: of 20 lone ones, or of 400 from WRITERS concurrent writers with group commit. */
async function roundTripsPerAppend(db: Db, concurrent: boolean): Promise<number> {
  const n = concurrent ? 400 : 20;
  const job = appendJob(db, appendInputs(n), { groupCommit: concurrent });
  const trips = await roundTripsOf(() => drive(n, concurrent ? WRITERS : 1, job));
  return trips / n;
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

    const { rows: info } = await sql<{
      version: string;
      sync: string;
    }>`select current_setting('server_version') as version, current_setting('synchronous_commit') as sync`.execute(db);
    console.log(`bench:append  PostgreSQL ${info[0]!.version} (synchronous_commit=${info[0]!.sync}), database ${new URL(scratch.url).pathname.slice(1)}`);
    if (citus) console.log(`  C on Citus at ${new URL(citusUrl!).host}, schema ${citusScratch!.schema}`);
    console.log(`  ${APPENDS} events per run, ${WRITERS} writers, ${TENANTS} tenants, ${ROUNDS} rounds of A/B${citus ? "/C" : ""}, warm-up ${WARMUP}\n`);

    const jobs = {
      S: (n: number) => appendJob(db, appendInputs(n), { groupCommit: false }),
      G: (n: number) => appendJob(db, appendInputs(n), { groupCommit: true }),
      H: (n: number) => appendJob(db, appendInputs(n), { groupCommit: true, hot: true }),
      B: (n: number) => plainJob(db, plainRows(n)),
      ...(citus ? { C: (n: number) => appendJob(citus!.db, appendInputs(n), { groupCommit: false }) } : {}),
    };
    type Run = keyof typeof jobs;
    const runs = Object.keys(jobs) as Run[];
    if (WARMUP > 0) for (const run of runs) await drive(WARMUP, WRITERS, jobs[run]!(WARMUP));

    const results: Partial<Record<Run, number[]>> = {};
    for (let round = 1; round <= ROUNDS; round++) {
      const line: string[] = [];
      for (const run of runs) {
        const r = await drive(APPENDS, WRITERS, jobs[run]!(APPENDS));
        (results[run] ??= []).push(r.rate);
        line.push(`${run} ${fmtRate(r.rate)}/s (${r.seconds.toFixed(2)} s)`);
      }
      console.log(`  round ${round}: ${line.join("   ")}`);
    }

    const { rows: counts } = await sql<{ n: number }>`select count(*)::int as n from events where event_type = 'access_token.issued'`.execute(db);
    const expected = (WARMUP + APPENDS * ROUNDS) * 3; // S, G and H
    if (counts[0]!.n !== expected) throw new Error(`expected ${expected} appended events, found ${counts[0]!.n}`);

    const best = (run: Run) => Math.max(...results[run]!);
    const B = best("B");
    const verdict = (ok: boolean) => (ok ? "PASS" : "BELOW GOAL");
    const rows: [string, string][] = [
      ["B plain INSERT (autocommit, bare table)", `${fmtRate(B)} events/s`],
      ["S appendEvents, each alone (1 statement, hash chain, projection)", `${fmtRate(best("S"))} events/s`],
      ["G appendEvents with group commit", `${fmtRate(best("G"))} events/s`],
      ["H group commit, one hot tenant", `${fmtRate(best("H"))} events/s`],
      ["ratio S/B", `${(best("S") / B).toFixed(3)}  (goal >= ${GOALS.single}: ${verdict(best("S") / B >= GOALS.single)})`],
      ["ratio G/B", `${(best("G") / B).toFixed(3)}  (goal >= ${GOALS.group}: ${verdict(best("G") / B >= GOALS.group)})`],
      ["H appends/s", `${fmtRate(best("H"))}  (goal >= ${fmtRate(GOALS.hot)}: ${verdict(best("H") >= GOALS.hot)})`],
      ["round trips per lone append", (await roundTripsPerAppend(db, false)).toFixed(2)],
      [`round trips per append, G with ${WRITERS} writers`, (await roundTripsPerAppend(db, true)).toFixed(2)],
    ];
    if (citus) {
      const C = best("C" as Run);
      rows.push(
        ["C appendEvents on Citus (2 nodes, shards on the worker)", `${fmtRate(C)} events/s`],
        ["ratio C/S (Citus overhead)", (C / best("S")).toFixed(3)],
        ["ratio C/B", (C / B).toFixed(3)],
        ["C round trips per lone append", (await roundTripsPerAppend(citus.db, false)).toFixed(2)],
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
