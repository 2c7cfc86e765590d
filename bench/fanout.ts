/**
 * npm run bench:fanout
 *
 * Live tenant events to many graphql-ws subscribers on one process, with a baseline measured in the
 * same run on the same server:
 *   A  1,000 subscribers over 100 tenants (10 each), 200 appends/s spread over the tenants;
 *   B  one subscriber of one tenant, the same 200 appends/s to that tenant.
 * For each: commit-to-receive latency p50 / p99 (append committed in this process -> the event
 * parsed by the client, also in this process), events lost (expected minus received, must be 0),
 * cross-tenant deliveries (must be 0), and the event feed's database queries per appended event
 * (reads for live subscribers plus fallback polls; replays at subscribe time excluded).
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
import { issueAccessToken } from "../src/app/credentials.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { AccessDenied } from "../src/domain/security/events.ts";
import { createLogger } from "../src/logger.ts";
import { createKeyplane } from "../src/main.ts";
import { withTenant } from "../src/store/db.ts";
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
const kp = await createKeyplane(
  loadConfig({
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
  }),
  { logger: createLogger({ level: "silent" }) },
);
const url = await kp.listen(0, "127.0.0.1");
const wsUrl = `${url.replace(/^http/, "ws")}/graphql`;
const system = systemActor("bench");

async function tenantWithToken(id: string): Promise<string> {
  await createTenant(kp.deps, system, { id, name: id, tier: "enterprise" });
  const issued = await issueAccessToken(kp.deps, system, { tenantId: id, subject: `svc@${id}`, kind: "service", roles: ["service"], scopes: [], issuedVia: "cli" });
  return issued.accessToken;
}

interface Run {
  latencies: number[];
  lost: number;
  crossTenant: number;
  queries: number;
  appended: number;
}

type ToClients = { type: "subscribe"; wsUrl: string; tenants: Array<{ id: string; token: string }>; perTenant: number } | { type: "collect"; expected: number };
type FromClients = { type: "ready" } | { type: "receipts"; receipts: Array<[string, number, number]>; crossTenant: number; failures: number };
const clients = new Worker(new URL("./fanoutClients.mjs", import.meta.url));
const ask = (message: ToClients) =>
  new Promise<FromClients>((resolve, reject) => {
    clients.once("message", resolve);
    clients.once("error", reject);
    clients.postMessage(message);
  });
const wallClock = () => performance.timeOrigin + performance.now();

/** Subscribes `perTenant` clients (in the worker) to each tenant, appends at RATE for `seconds`, and measures. */
async function run(tenants: Array<{ id: string; token: string }>, perTenant: number, seconds: number): Promise<Run> {
  await ask({ type: "subscribe", wsUrl, tenants, perTenant });
  const commits = new Map<string, number>();
  const before = { ...kp.deps.events.stats };
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
    const append: Promise<void> = withTenant(kp.deps.db, tenant.id, (trx) =>
      appendEvents(trx, { tenantId: tenant.id, streamType: "bench", streamId: "fanout", expectedVersion: "any", events: [AccessDenied({ level: "info", status: "denied", reason: tenant.id })], metadata: { actor: { subject: "bench", kind: "system", roles: [] } } }),
    )
      .then(([event]) => void commits.set(`${tenant.id}:${event!.sequence}`, wallClock()))
      .finally(() => inflight.delete(append));
    inflight.add(append);
  }
  await Promise.all(inflight);
  const expected = total * perTenant;
  const answer = await ask({ type: "collect", expected });
  if (answer.type !== "receipts") throw new Error("unexpected answer from the clients");
  const after = kp.deps.events.stats;
  const latencies = answer.receipts.flatMap(([tenant, sequence, at]) => {
    const committed = commits.get(`${tenant}:${sequence}`);
    return committed === undefined ? [] : [at - committed];
  });
  return {
    latencies,
    lost: expected - answer.receipts.length,
    crossTenant: answer.crossTenant,
    queries: after.liveReads - before.liveReads + (after.polls - before.polls),
    appended: total,
  };
}

const pct = (values: number[], p: number) => {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const ms = (n: number) => `${n.toFixed(2)} ms`;

try {
  const many = await Promise.all(Array.from({ length: TENANTS }, (_, i) => `bench-${i}`).map(async (id) => ({ id, token: await tenantWithToken(id) })));
  const lone = [{ id: "bench-lone", token: await tenantWithToken("bench-lone") }];
  const perTenant = Math.max(1, Math.round(SUBSCRIBERS / TENANTS));

  const a = await run(many, perTenant, SECONDS);
  const b = await run(lone, 1, Math.max(3, Math.round(SECONDS / 2)));

  const backend = benchDatabaseUrl ? "PostgreSQL" : "embedded PGlite";
  console.log(`\nbench:fanout on ${backend}, ${RATE} appends/s`);
  console.log(`A  ${TENANTS * perTenant} subscribers over ${TENANTS} tenants, ${a.appended} events: p50 ${ms(pct(a.latencies, 50))}  p99 ${ms(pct(a.latencies, 99))}  (${a.latencies.length} deliveries)`);
  console.log(`   events lost ${a.lost}  cross-tenant deliveries ${a.crossTenant}  database queries per event ${(a.queries / a.appended).toFixed(3)}`);
  console.log(`B  1 subscriber of 1 tenant, ${b.appended} events: p50 ${ms(pct(b.latencies, 50))}  p99 ${ms(pct(b.latencies, 99))}`);
  console.log(`   events lost ${b.lost}  cross-tenant deliveries ${b.crossTenant}  database queries per event ${(b.queries / b.appended).toFixed(3)}`);
  console.log(`ratio A/B latency: p50 ${(pct(a.latencies, 50) / pct(b.latencies, 50)).toFixed(2)}  p99 ${(pct(a.latencies, 99) / pct(b.latencies, 99)).toFixed(2)}`);
} finally {
  await clients.terminate();
  await kp.close();
  await benchDatabase?.drop();
  rmSync(dataDir, { recursive: true, force: true });
}
