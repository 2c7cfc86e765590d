/**
 * npm run bench:limits
 *
 * Rate limits and GraphQL protection, measured against a baseline in the same run:
 *   A  throughput of a typical authenticated query (`{ me { … } tenant { … } }`: a token check and
 *      a tenant read) with every protection off (no document limits, no cost, no request limits)
 *      and with all of them on, on the memory store and on the Redis store (limits set high enough
 *      that nothing is refused: this is the price of counting). Targets: memory ≥ 0.9×, Redis ≥ 0.8×.
 *   B  accuracy under overload: 3× the quota sent at once inside one window, to one Keyplane
 *      (memory) and to two sharing a Redis and a database: accepted / quota (target within 1 %).
 *   C  the cost of refusing each kind of hostile document (parse, validation, cost estimate), in µs.
 * Rounds alternate between the configurations; the best round of each is kept. Embedded PGlite
 * unless DATABASE_URL is set. Redis: REDIS_URL, or a redis-server of the bench's own on a free port,
 * or skipped when there is none. Always exits 0 once measured (a benchmark, not a test).
 *
 * Environment: DATABASE_URL, REDIS_URL, BENCH_REQUESTS (default 3000), BENCH_CONCURRENCY (16),
 * BENCH_ROUNDS (3), BENCH_QUOTA (1000).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { getOperationAST } from "graphql";
import { issueAccessToken } from "../src/app/sessions/issueAccessToken.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { schema } from "../src/graphql/schema.ts";
import { createGraphQLServer } from "../src/http/yoga.ts";
import { DEFAULT_DOCUMENT_LIMITS } from "../src/config/limitDefaults.ts";
import { operationCost } from "../src/limits/queryCost.ts";
import { createLogger } from "../src/logger.ts";
import { createKeyplane, type Keyplane } from "../src/main.ts";
import { openDatabase, type DatabaseHandle } from "../src/store/db.ts";
import { migrateToLatest } from "../src/store/migrate.ts";
import { benchDatabaseFromEnv } from "./benchDatabase.ts";

const intEnv = (name: string, fallback: number) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const REQUESTS = intEnv("BENCH_REQUESTS", 3000);
const CONCURRENCY = intEnv("BENCH_CONCURRENCY", 16);
const ROUNDS = intEnv("BENCH_ROUNDS", 3);
const QUOTA = intEnv("BENCH_QUOTA", 1000);

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

// Redis: the given one, or one of our own.
let redisUrl = process.env.REDIS_URL;
let ownRedis: ChildProcess | undefined;
if (!redisUrl && spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0) {
  const port = await freePort();
  ownRedis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  redisUrl = `redis://127.0.0.1:${port}`;
}

// One database for every Keyplane of the run (on PostgreSQL, a database of its own, dropped at the end).
const benchDatabase = await benchDatabaseFromEnv("limits");
const database: DatabaseHandle = benchDatabase ? await openDatabase({ url: benchDatabase.url, poolMax: 10 }) : await openDatabase({ dataDir: "memory://" });
await migrateToLatest(database);

const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const dirs: string[] = [];
const HIGH = {
  RATE_LIMIT_REQUESTS_PER_MINUTE: "enterprise:100000000",
  RATE_LIMIT_BURST_PER_10_SECONDS: "enterprise:100000000",
  RATE_LIMIT_PRINCIPAL_PER_MINUTE: "100000000",
  RATE_LIMIT_COST_PER_MINUTE: "enterprise:100000000",
};

async function keyplane(env: Record<string, string>, protections = true): Promise<{ kp: Keyplane; url: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-limits-"));
  dirs.push(dataDir);
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent", KEYPLANE_DATA_DIR: dataDir, KEYPLANE_SIGNING_KEY: signingKey, ...env });
  config.limits.protections = protections;
  const kp = await createKeyplane(config, { database, logger: createLogger({ level: "silent" }) });
  return { kp, url: await kp.listen(0, "127.0.0.1") };
}

const QUERY = JSON.stringify({ query: "{ me { subject tenantId roles } tenant { id name tier } }" });
async function send(url: string, token: string): Promise<number> {
  const res = await fetch(`${url}/graphql`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: QUERY });
  await res.arrayBuffer();
  return res.status;
}
async function load(url: string, token: string, requests: number, concurrency: number): Promise<{ perSecond: number; statuses: number[] }> {
  const statuses: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        statuses.push(await send(url, token));
      }
    }),
  );
  return { perSecond: requests / ((performance.now() - start) / 1000), statuses };
}

const mint = async (kp: Keyplane, tenantId: string, subject: string) =>
  (await issueAccessToken(kp.deps, systemActor("bench"), { tenantId, subject, kind: "service", roles: ["service"], issuedVia: "cli" })).accessToken;

console.log(
  `bench:limits on ${database.backend === "pg" ? "PostgreSQL" : "embedded PGlite"}, Redis ${redisUrl ? (ownRedis ? "of its own" : redisUrl.replace(/\/\/.*@/, "//…@")) : "none (skipped)"}; ${REQUESTS} requests × ${ROUNDS} rounds, ${CONCURRENCY} concurrent`,
);

// C (first, on a fresh heap): the cost of refusing hostile documents (unique texts, so no parse cache helps).
const host = await keyplane({ RATE_LIMITS: "off" });
const hostile: Record<string, (i: number) => string> = {
  depth: (i) => `{ a ${"{ b ".repeat(11)}${"}".repeat(12)} # ${i}`,
  aliases: (i) => `{ ${Array.from({ length: 16 }, (_, k) => `a${k}: me { subject }`).join(" ")} } # ${i}`,
  directives: (i) => `{ me { subject ${"@include(if: true) ".repeat(21)}} } # ${i}`,
  tokens: (i) => `{ me { ${"subject ".repeat(2100)}} } # ${i}`,
  cost: (i) => `{ agents(first: 100) { nodes { id history(first: 100) { type } } } } # ${i}`,
};
const ITER = 2000;
for (const [kind, make] of Object.entries(hostile)) {
  // A server of its own per kind: the documents one kind leaves in Yoga's parse cache do not weigh on the next.
  const yoga = createGraphQLServer(host.kp.deps);
  let refused = 0;
  const start = performance.now();
  for (let i = 0; i < ITER; i++) {
    const enveloped = yoga.getEnveloped({ request: new Request("http://bench/graphql"), params: {} } as never);
    try {
      const document = enveloped.parse(make(i));
      const errors = enveloped.validate(enveloped.schema, document);
      if (errors.length) refused++;
      else if (kind === "cost" && operationCost(schema, document, getOperationAST(document)!, {}, DEFAULT_DOCUMENT_LIMITS) > DEFAULT_DOCUMENT_LIMITS.maxCost)
        refused++;
    } catch {
      refused++;
    }
  }
  const micros = ((performance.now() - start) * 1000) / ITER;
  console.log(`C  refusing a document over the ${kind} limit: ${micros.toFixed(0)} µs (${refused}/${ITER} refused)`);
}
await host.kp.close();

// A: throughput.
const configs: Array<{ label: string; env: Record<string, string>; protections: boolean }> = [
  { label: "all protections off", env: { RATE_LIMITS: "off" }, protections: false },
  { label: "all on, memory store", env: { RATE_LIMITS: "on", RATE_LIMIT_STORE: "memory", ...HIGH }, protections: true },
  ...(redisUrl
    ? [{ label: "all on, Redis store", env: { RATE_LIMITS: "on", REDIS_URL: redisUrl, RATE_LIMIT_STORE: "redis", ...HIGH }, protections: true }]
    : []),
];
const servers = await Promise.all(configs.map((c) => keyplane(c.env, c.protections)));
const tenantId = `bench-${Date.now().toString(36)}`;
await createTenant(servers[0]!.kp.deps, systemActor("bench"), { id: tenantId, name: "Bench", tier: "enterprise" });
const token = await mint(servers[0]!.kp, tenantId, "bench-service");
for (const s of servers) await load(s.url, token, 300, CONCURRENCY); // warm-up
const best = configs.map(() => 0);
for (let round = 0; round < ROUNDS; round++) {
  for (const [i, s] of servers.entries()) {
    const { perSecond, statuses } = await load(s.url, token, REQUESTS, CONCURRENCY);
    if (statuses.some((st) => st !== 200)) throw new Error(`${configs[i]!.label}: ${statuses.filter((st) => st !== 200).length} answers were not 200`);
    best[i] = Math.max(best[i]!, perSecond);
  }
}
const baseline = best[0]!;
for (const [i, c] of configs.entries()) {
  const target = c.label.includes("memory") ? " (target ≥ 0.90)" : c.label.includes("Redis") ? " (target ≥ 0.80)" : "";
  console.log(`A  ${c.label.padEnd(24)} ${best[i]!.toFixed(0).padStart(6)} req/s   ratio ${(best[i]! / baseline).toFixed(2)}${target}`);
}
await Promise.all(servers.map((s) => s.kp.close()));

// B: accuracy under overload (3× the quota at once, one window).
async function accuracy(label: string, env: Record<string, string>, processes: number) {
  const apps = await Promise.all(
    Array.from({ length: processes }, () =>
      keyplane({
        RATE_LIMITS: "on",
        RATE_LIMIT_REQUESTS_PER_MINUTE: `enterprise:${QUOTA}`,
        RATE_LIMIT_BURST_PER_10_SECONDS: "enterprise:100000000",
        RATE_LIMIT_PRINCIPAL_PER_MINUTE: "100000000",
        ...env,
      }),
    ),
  );
  const id = `acc-${Math.random().toString(36).slice(2, 8)}`;
  await createTenant(apps[0]!.kp.deps, systemActor("bench"), { id, name: "Accuracy", tier: "enterprise" });
  const t = await mint(apps[0]!.kp, id, "bench-accuracy");
  const start = performance.now();
  const results = await Promise.all(apps.map((a) => load(a.url, t, Math.ceil((3 * QUOTA) / processes), 32)));
  const seconds = (performance.now() - start) / 1000;
  const ok = results.flatMap((r) => r.statuses).filter((s) => s === 200).length;
  console.log(
    `B  ${label.padEnd(34)} accepted ${ok} of quota ${QUOTA} (${(((ok - QUOTA) / QUOTA) * 100).toFixed(2)} %, target within 1 %) in ${seconds.toFixed(1)} s`,
  );
  await Promise.all(apps.map((a) => a.kp.close()));
}
await accuracy("memory store, 1 Keyplane", { RATE_LIMIT_STORE: "memory" }, 1);
if (redisUrl) await accuracy("Redis store, 2 Keyplanes", { RATE_LIMIT_STORE: "redis", REDIS_URL: redisUrl }, 2);
await accuracy("database store, 2 Keyplanes", { RATE_LIMIT_STORE: "database" }, 2);

await database.close();
await benchDatabase?.drop();
ownRedis?.kill("SIGKILL");
for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
