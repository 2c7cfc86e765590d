/**
 * npm run bench:fanout
 *
 * Live tenant events to many graphql-ws subscribers, with a baseline measured in the same run on the
 * same server. Appends go through the real write path (appendEvents on its own: group commit):
 *   A  1,000 subscribers over 100 tenants (10 each), 200 appends/s spread over the tenants;
 *   B  one subscriber of one tenant, the same 200 appends/s to that tenant;
 *   C  (with DATABASE_URL) two Keyplane servers on one database, 20 subscribers of 2 tenants spread
 *      over both, the appends through both in turn: each server gets half of its events from memory
 *      and half from the other's NOTIFY and a read. (Both servers run in this process, each with its
 *      own pool, LISTEN connection and feed; they share its CPU.)
 * For each: commit-to-receive latency p50 / p99 (append committed -> the event parsed by the client,
 * in a worker thread of this process), events lost (expected minus received, must be 0),
 * cross-tenant deliveries (must be 0), the event feeds' database queries per appended event (reads
 * for live subscribers plus fallback polls; replays at subscribe time excluded), socket writes and
 * frames per event (keyplane_websocket_writes_total, _frames_total), and GraphQL executions per
 * event (a subscription's event is executed once per distinct operation: src/http/sharedSubscriptionResults.ts).
 * Prints A's latency over B's. Embedded PGlite unless DATABASE_URL is set (then a database of its
 * own there). Always exits 0 once measured (a benchmark, not a test).
 *
 * Environment: DATABASE_URL, BENCH_SUBSCRIBERS (1000), BENCH_TENANTS (100), BENCH_RATE (200/s), BENCH_SECONDS (10).
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { issueAccessToken } from "../src/app/sessions/issueAccessToken.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { AccessDenied } from "../src/domain/security/events.ts";
import { createLogger } from "../src/logger.ts";
import { subscriptionExecutionStats } from "../src/http/sharedSubscriptionResults.ts";
import { createKeyplane, type Keyplane } from "../src/main.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { benchDatabaseFromEnv } from "./benchDatabase.ts";

const intEnv = (name: string, fallback: number) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const SUBSCRIBERS = intEnv("BENCH_SUBSCRIBERS", 1000);
const TENANTS = intEnv("BENCH_TENANTS", 100);
const RATE = intEnv("BENCH_RATE", 200);
const SECONDS = intEnv("BENCH_SECONDS", 10);
const WRITERS = 8;

const benchDatabase = await benchDatabaseFromEnv("fanout");
const benchDatabaseUrl = benchDatabase?.url;

const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-fanout-"));
const env = {
  NODE_ENV: "test",
  LOG_LEVEL: "silent",
  KEYPLANE_DATA_DIR: dataDir,
  // A principal per tenant holds 10 sockets here.
  WS_MAX_SOCKETS_PER_PRINCIPAL: String(SUBSCRIBERS),
  ...(benchDatabaseUrl
    ? {
        DATABASE_URL: benchDatabaseUrl,
        DATABASE_POOL_MAX: "20",
        KEYPLANE_MIGRATE_ON_START: "true",
        KEYPLANE_ENCRYPTION_KEYS: `bench:${Buffer.alloc(32, 7).toString("base64")}`,
        KEYPLANE_SIGNING_KEY: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      }
    : {}),
};
const kp = await createKeyplane(loadConfig(env), { logger: createLogger({ level: "silent" }) });
const wsUrlOf = (url: string) => `${url.replace(/^http/, "ws")}/graphql`;
const wsUrl = wsUrlOf(await kp.listen(0, "127.0.0.1"));
const system = systemActor("bench");

async function tenantWithToken(id: string): Promise<string> {
  await createTenant(kp.deps, system, { id, name: id, tier: "enterprise" });
  const issued = await issueAccessToken(kp.deps, system, {
    tenantId: id,
    subject: `svc@${id}`,
    kind: "service",
    roles: ["service"],
    scopes: [],
    issuedVia: "cli",
  });
  return issued.accessToken;
}

interface Run {
  latencies: number[];
  lost: number;
  crossTenant: number;
  queries: number;
  appended: number;
  writes: number;
  frames: number;
  executions: number;
}

type ToClients =
  | { type: "subscribe"; wsUrls: string[]; tenants: Array<{ id: string; token: string }>; perTenant: number }
  | { type: "collect"; expected: number };
type FromClients = { type: "ready" } | { type: "receipts"; receipts: Array<[string, number, number]>; crossTenant: number; failures: number };
const clients = new Worker(new URL("./fanoutClients.mjs", import.meta.url));
const ask = (message: ToClients) =>
  new Promise<FromClients>((resolve, reject) => {
    clients.once("message", resolve);
    clients.once("error", reject);
    clients.postMessage(message);
  });
const wallClock = () => performance.timeOrigin + performance.now();

const counted = async (servers: Keyplane[]) => {
  let queries = 0;
  let writes = 0;
  let frames = 0;
  for (const server of servers) {
    queries += server.deps.events.stats.liveReads + server.deps.events.stats.polls;
    writes += (await server.deps.metrics.websocketWrites.get()).values[0]?.value ?? 0;
    frames += (await server.deps.metrics.websocketFrames.get()).values[0]?.value ?? 0;
  }
  return { queries, writes, frames, executions: subscriptionExecutionStats.executions };
};

/**
 * Subscribes `perTenant` clients (in the worker) to each tenant, spread over the servers, appends at
 * RATE for `seconds` through the servers in turn, and measures.
 */
async function run(
  tenants: Array<{ id: string; token: string }>,
  perTenant: number,
  seconds: number,
  servers: Array<{ kp: Keyplane; wsUrl: string }>,
): Promise<Run> {
  await ask({ type: "subscribe", wsUrls: servers.map((s) => s.wsUrl), tenants, perTenant });
  const commits = new Map<string, number>();
  const before = await counted(servers.map((s) => s.kp));
  const total = RATE * seconds;
  const started = performance.now();
  const inflight = new Set<Promise<void>>();
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    // Writers as a server has them: a bounded number at a time, never a pile-up on the pool.
    while (inflight.size >= WRITERS) await Promise.race(inflight);
    const tenant = tenants[n % tenants.length]!;
    const through = servers[n % servers.length]!.kp;
    const append: Promise<void> = appendEvents(through.deps.db, {
      tenantId: tenant.id,
      streamType: "bench",
      streamId: "fanout",
      expectedVersion: "any",
      events: [AccessDenied({ level: "info", status: "denied", reason: tenant.id })],
      metadata: { actor: { subject: "bench", kind: "system", roles: [] } },
      occurredAt: new Date(),
    })
      .then(([event]) => void commits.set(`${tenant.id}:${event!.sequence}`, wallClock()))
      .finally(() => inflight.delete(append));
    inflight.add(append);
  }
  await Promise.all(inflight);
  const expected = total * perTenant;
  const answer = await ask({ type: "collect", expected });
  if (answer.type !== "receipts") throw new Error("unexpected answer from the clients");
  const after = await counted(servers.map((s) => s.kp));
  const latencies = answer.receipts.flatMap(([tenant, sequence, at]) => {
    const committed = commits.get(`${tenant}:${sequence}`);
    return committed === undefined ? [] : [at - committed];
  });
  return {
    latencies,
    lost: expected - answer.receipts.length,
    crossTenant: answer.crossTenant,
    queries: after.queries - before.queries,
    writes: after.writes - before.writes,
    frames: after.frames - before.frames,
    executions: after.executions - before.executions,
    appended: total,
  };
}

const pct = (values: number[], p: number) => {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const ms = (n: number) => `${n.toFixed(2)} ms`;

let second: Keyplane | undefined;
try {
  const many = await Promise.all(Array.from({ length: TENANTS }, (_, i) => `bench-${i}`).map(async (id) => ({ id, token: await tenantWithToken(id) })));
  const lone = [{ id: "bench-lone", token: await tenantWithToken("bench-lone") }];
  const pair = [
    { id: "bench-pair-0", token: await tenantWithToken("bench-pair-0") },
    { id: "bench-pair-1", token: await tenantWithToken("bench-pair-1") },
  ];
  const perTenant = Math.max(1, Math.round(SUBSCRIBERS / TENANTS));
  const one = [{ kp, wsUrl }];

  const a = await run(many, perTenant, SECONDS, one);
  const b = await run(lone, 1, Math.max(3, Math.round(SECONDS / 2)), one);
  let c: Run | undefined;
  if (benchDatabaseUrl) {
    // The second server migrates nothing (the first did) and signs with the same key, so one token serves both.
    second = await createKeyplane(loadConfig({ ...env, KEYPLANE_MIGRATE_ON_START: "false" }), { logger: createLogger({ level: "silent" }) });
    const secondWs = wsUrlOf(await second.listen(0, "127.0.0.1"));
    c = await run(pair, 10, Math.max(3, Math.round(SECONDS / 2)), [...one, { kp: second, wsUrl: secondWs }]);
  }

  const backend = benchDatabaseUrl ? "PostgreSQL" : "embedded PGlite";
  const per = (n: number, r: Run) => (n / r.appended).toFixed(3);
  const report = (label: string, r: Run) => {
    console.log(`${label}, ${r.appended} events: p50 ${ms(pct(r.latencies, 50))}  p99 ${ms(pct(r.latencies, 99))}  (${r.latencies.length} deliveries)`);
    console.log(
      `   events lost ${r.lost}  cross-tenant deliveries ${r.crossTenant}  per event: database queries ${per(r.queries, r)}  socket writes ${per(r.writes, r)}  frames ${per(r.frames, r)}  GraphQL executions ${per(r.executions, r)}`,
    );
  };
  console.log(`\nbench:fanout on ${backend}, ${RATE} appends/s`);
  report(`A  ${TENANTS * perTenant} subscribers over ${TENANTS} tenants`, a);
  report("B  1 subscriber of 1 tenant", b);
  if (c) report("C  two servers on one database, 20 subscribers of 2 tenants on both, appends through both", c);
  console.log(
    `ratio A/B latency: p50 ${(pct(a.latencies, 50) / pct(b.latencies, 50)).toFixed(2)}  p99 ${(pct(a.latencies, 99) / pct(b.latencies, 99)).toFixed(2)}`,
  );
} finally {
  await clients.terminate();
  await second?.close();
  await kp.close();
  await benchDatabase?.drop();
  rmSync(dataDir, { recursive: true, force: true });
}
