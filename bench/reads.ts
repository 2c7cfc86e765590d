/**
 * npm run bench:reads
 *
 * Dashboard GraphQL reads over HTTP: requests/s and p50 / p99 latency, BENCH_CONCURRENCY clients each
 * sending its next request as soon as the previous one is answered (keep-alive), against a baseline
 * measured in the same run:
 *   Y  a bare graphql-yoga server (createYoga + createSchema, `type Query { hello: String }`, on
 *      node:http) answering `{ hello }`: what HTTP + Yoga cost with nothing behind them;
 *   P  Keyplane (createKeyplane, rate limits off, LOG_LEVEL silent, a pool of DATABASE_POOL_MAX's
 *      default) on a scratch database of DATABASE_URL's PostgreSQL;
 *   E  Keyplane on the embedded database (no DATABASE_URL: PGlite in a temporary data directory,
 *      opened and migrated by createKeyplane as `keyplane serve` does);
 *   C  with CITUS_URL (a Citus coordinator, as Keyplane's role): P again on Citus, in a schema of its
 *      own that `migrate` distributes (a tenant's rows on one worker).
 * Each Keyplane holds one enterprise tenant seeded through the app's own paths: 50 agents
 * (createAgent), 100 tasks dispatched to them (dispatchTask), 50 GitHub installations (the browser
 * install flow against a local GitHub fake) and the events all that appended (over 200); the reads use
 * an admin's access token. Each query is a contender of its own:
 *   me             `{ me { subject tenantId roles } }` (token verification, the cheapest field)
 *   agents         `agents(first: 50) { nodes { id name status connection lastSeenAt } }`
 *   tasks          `tasks(first: 50) { nodes { id agentId kind status dispatchedAt deadlineAt } }`
 *   auditLog       `auditLog(first: 100) { edges { node { sequence type data } } }`
 *   installations  `installations(first: 50) { nodes { id platform app status externalId account { login } } }`
 * The clients run in a worker thread of their own (bench/readClients.mjs), so their work does not
 * share the servers' event loop (the embedded database runs on Keyplane's, as in `keyplane serve`;
 * the machine's two cores are shared with PostgreSQL). All are warmed up, then run alternately
 * BENCH_ROUNDS times; the best run (requests/s) of each counts, with that run's latencies. Then the
 * database round trips per request of each query are counted by the server itself (its histogram
 * keyplane_http_db_round_trips, BEGIN and COMMIT included): mean of 20 sequential requests after 3
 * uncounted ones. (Commands a Citus coordinator sends on to its workers are not counted.)
 * Prints, per query and contender: requests/s, p50 and p99, the ratio to Y (and to P for E and C),
 * round trips per request, and the issue's goals with whether each was met: on PostgreSQL `{ me }`
 * >= 0.8 of Y with 0 round trips and each list (auditLog's 100 rows included) >= 0.5 with <= 4;
 * embedded, half those ratios; Citus, none.
 * Always exits 0 once measured (a benchmark, not a test); 2 without DATABASE_URL or with a bad setting.
 *
 * Environment: DATABASE_URL (required), CITUS_URL (optional), BENCH_CONCURRENCY (default 16),
 * BENCH_REQUESTS (requests per run, default 3000), BENCH_ROUNDS (default 2), BENCH_WARMUP (requests
 * per contender before the rounds, default 300), BENCH_QUERIES (a comma-separated subset of the
 * queries above, default all).
 */
import { generateKeyPairSync } from "node:crypto";
import { Worker } from "node:worker_threads";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createSchema, createYoga } from "graphql-yoga";
import { sql } from "kysely";
import { createAgent } from "../src/app/agents/createAgent.ts";
import { issueAccessToken } from "../src/app/sessions/issueAccessToken.ts";
import { dispatchTask } from "../src/app/tasks/dispatchTask.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { createKeyplane, type Keyplane } from "../src/main.ts";
import { openDatabase, type DatabaseHandle } from "../src/store/db.ts";
import { migrateToLatest } from "../src/store/migrate.ts";
import { startFakeGitHub, type FakeGitHub } from "../test/fakes/github.ts";
import { browseInstall, freePort } from "../test/testkit/providerWorld.ts";
import { createBenchDatabase, createBenchSchema, type BenchDatabase } from "./benchDatabase.ts";
import { intEnv } from "./benchEnv.ts";
import { roundTripsPerRequest } from "./roundTrips.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("bench:reads needs a PostgreSQL: set DATABASE_URL, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:reads");
  process.exit(2);
}
const serverUrl: string = url;
const citusUrl = process.env.CITUS_URL || undefined;

const CONCURRENCY = intEnv("BENCH_CONCURRENCY", 16);
const REQUESTS = intEnv("BENCH_REQUESTS", 3000);
const ROUNDS = intEnv("BENCH_ROUNDS", 2);
const WARMUP = intEnv("BENCH_WARMUP", 300, 0);
const AGENTS = 50;
const TASKS_PER_AGENT = 2;
const INSTALLATIONS = 50;
const COUNTED = 20;
const TENANT = "bench-reads";

const QUERIES = {
  me: "{ me { subject tenantId roles } }",
  agents: "{ agents(first: 50) { nodes { id name status connection lastSeenAt } } }",
  tasks: "{ tasks(first: 50) { nodes { id agentId kind status dispatchedAt deadlineAt } } }",
  auditLog: "{ auditLog(first: 100) { edges { node { sequence type data } } } }",
  installations: "{ installations(first: 50) { nodes { id platform app status externalId account { login } } } }",
} as const;
type QueryName = keyof typeof QUERIES;
// BENCH_QUERIES (e.g. "me,agents") runs only those.
const QUERY_NAMES = (process.env.BENCH_QUERIES ? process.env.BENCH_QUERIES.split(",").map((q) => q.trim()) : Object.keys(QUERIES)) as QueryName[];
for (const name of QUERY_NAMES) {
  if (!(name in QUERIES)) {
    console.error(`BENCH_QUERIES: ${name} is not one of ${Object.keys(QUERIES).join(", ")}`);
    process.exit(2);
  }
}

/** What a valid answer of each looks like (checked once per contender, before the clock starts). */
const rowsOf = (page: any): unknown[] | undefined => page?.nodes ?? page?.edges;
const expectations: Record<QueryName | "hello", (data: any) => boolean> = {
  hello: (data) => data?.hello === "world",
  me: (data) => data?.me?.tenantId === TENANT,
  agents: (data) => rowsOf(data?.agents)?.length === 50,
  tasks: (data) => rowsOf(data?.tasks)?.length === 50,
  auditLog: (data) => rowsOf(data?.auditLog)?.length === 100,
  installations: (data) => rowsOf(data?.installations)?.length === 50,
};

type StoreName = "P" | "E" | "C";

/** The issue's goals: on PostgreSQL, and half the ratio embedded; none on Citus. */
function goalOf(store: StoreName, query: QueryName): { ratio: number; maxTrips?: number } | undefined {
  const onPostgres = query === "me" ? { ratio: 0.8, maxTrips: 0 } : { ratio: 0.5, maxTrips: 4 };
  if (store === "P") return onPostgres;
  if (store === "E") return { ratio: onPostgres.ratio / 2 };
  return undefined;
}

/** Set by SIGINT/SIGTERM: clients stop sending, and the run unwinds through its cleanup. */
let interrupted: NodeJS.Signals | undefined;
const checkInterrupted = () => {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
};

/** One GraphQL request over HTTP, prepared once: only the request and its answer are in the loop. */
interface Target {
  label: string;
  url: string;
  init: RequestInit;
  expect: (data: any) => boolean;
}

function target(label: string, endpoint: string, query: string, expect: (data: any) => boolean, token?: string): Target {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return { label, url: endpoint, init: { method: "POST", headers, body: JSON.stringify({ query }) }, expect };
}

/** Sends one request; any answer but a 200 without errors fails the run. */
async function send(t: Target): Promise<void> {
  const res = await fetch(t.url, t.init);
  const text = await res.text();
  if (res.status !== 200 || text.includes('"errors"')) throw new Error(`${t.label}: HTTP ${res.status} ${text.slice(0, 500)}`);
}

/** One request, its answer parsed and checked against what the query must return. */
async function verify(t: Target): Promise<void> {
  const res = await fetch(t.url, t.init);
  const body = (await res.json()) as { data?: unknown; errors?: unknown };
  if (res.status !== 200 || body.errors || !t.expect(body.data))
    throw new Error(`${t.label}: unexpected answer (HTTP ${res.status}): ${JSON.stringify(body).slice(0, 500)}`);
}

interface Run {
  rate: number;
  seconds: number;
  p50: number;
  p99: number;
  /** The servers' event loop busy per request (ms): the server's own cost, whatever the clients and PostgreSQL take. */
  loopMs: number;
}

// The clients run in a worker thread (bench/readClients.mjs): the servers' event loop serves only.
const clientThread = new Worker(new URL("./readClients.mjs", import.meta.url));
clientThread.unref();

/** `count` requests from `clients` concurrent loops (in the client thread): requests per second and latency quantiles (ms). */
async function drive(t: Target, count: number, clients: number): Promise<Run> {
  const loop = performance.eventLoopUtilization();
  const run = await new Promise<Omit<Run, "loopMs"> | { error: string }>((resolve) => {
    const stopped = () => resolve({ error: "the client thread stopped" });
    clientThread.once("exit", stopped);
    clientThread.once("message", (answer: Omit<Run, "loopMs"> | { error: string }) => {
      clientThread.off("exit", stopped);
      resolve(answer);
    });
    clientThread.postMessage({ url: t.url, init: t.init, count, clients });
  });
  checkInterrupted();
  if ("error" in run) throw new Error(`${t.label}: ${run.error}`);
  return { ...run, loopMs: performance.eventLoopUtilization(loop).active / count };
}

const fmtRate = (n: number) => Math.round(n).toLocaleString("en-US");
const fmtTrips = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));

async function listen(server: Server, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return `http://127.0.0.1:${port}`;
}

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

// Every Keyplane of the run shares the keys.
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const encryptionKeys = `bench:${Buffer.alloc(32, 7).toString("base64")}`;
const dataRoot = mkdtempSync(path.join(tmpdir(), "keyplane-bench-reads-"));

/** Keyplane on one store. P and C run on a handle the bench opens and migrates; E opens its own. */
interface Store {
  name: StoreName;
  title: string;
  /** P and C: the store's URL and the handle Keyplane is given (closed by the bench). */
  url?: string;
  handle?: DatabaseHandle;
  kp?: Keyplane;
  targets?: Record<QueryName, Target>;
}

/**
 * Starts Keyplane on the store, listening on a loopback port chosen up front (the GitHub fake's app,
 * one per store, must know its callback URL), with rate limits and every background job out of the way.
 */
async function startKeyplane(store: Store, github: FakeGitHub): Promise<string> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const app = await github.createApp({ slug: `bench-reads-${store.name.toLowerCase()}`, setupUrl: `${publicUrl}/oauth/callback/github` });
  const dataDir = path.join(dataRoot, store.name);
  mkdirSync(dataDir);
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    PORT: String(port),
    KEYPLANE_PUBLIC_URL: publicUrl,
    KEYPLANE_DATA_DIR: dataDir,
    ...(store.url ? { DATABASE_URL: store.url, KEYPLANE_MIGRATE_ON_START: "false" } : {}),
    KEYPLANE_SIGNING_KEY: signingKey,
    KEYPLANE_ENCRYPTION_KEYS: encryptionKeys,
    RATE_LIMITS: "off",
    AGENT_SWEEP_INTERVAL_SECONDS: "3600",
    CREDENTIAL_REFRESH_INTERVAL_SECONDS: "3600",
    AUDIT_CHECKPOINT_INTERVAL_SECONDS: "86400",
    GITHUB_URL: github.url,
    GITHUB_API_URL: github.url,
    GITHUB_APP_ID: String(app.appId),
    GITHUB_APP_SLUG: app.slug,
    GITHUB_APP_PRIVATE_KEY: app.privateKeyPem,
    GITHUB_APP_WEBHOOK_SECRET: app.webhookSecret,
  });
  store.kp = await createKeyplane(config, { database: store.handle, logger: createLogger({ level: "silent" }) });
  return store.kp.listen(port, "127.0.0.1");
}

/** Installs the GitHub app as a browser would: Keyplane -> GitHub -> Keyplane's callback. */
async function installGitHub(base: string, token: string): Promise<void> {
  const { status, body } = await browseInstall({ url: base }, "github", token);
  if (status !== 200 || body?.outcome !== "created") throw new Error(`install: HTTP ${status} ${JSON.stringify(body).slice(0, 300)}`);
}

/** Migrates the store (P, C), starts Keyplane on it, seeds the tenant through the app's use cases and flows. */
async function prepare(store: Store, github: FakeGitHub): Promise<void> {
  if (store.handle) await migrateToLatest(store.handle);
  checkInterrupted();
  const base = await startKeyplane(store, github);
  const deps = store.kp!.deps;
  const actor = systemActor("bench:reads", TENANT);
  await createTenant(deps, systemActor("bench:reads"), { id: TENANT, name: "Bench reads", tier: "enterprise" });
  const { accessToken } = await issueAccessToken(deps, systemActor("bench:reads"), {
    tenantId: TENANT,
    subject: "admin@bench-reads",
    kind: "user",
    roles: ["admin"],
    issuedVia: "cli",
  });
  for (let i = 0; i < AGENTS; i++) {
    checkInterrupted();
    const agent = await createAgent(deps, actor, { name: `Agent ${String(i).padStart(2, "0")}`, type: "bench-bot", tags: ["bench"] });
    for (let j = 0; j < TASKS_PER_AGENT; j++) await dispatchTask(deps, actor, { agentId: agent.agent_id, kind: "bench.run", payload: { agent: i, task: j } });
  }
  for (let i = 0; i < INSTALLATIONS; i++) {
    checkInterrupted();
    github.setNextInstall({
      account: { login: `bench-org-${i}`, type: "Organization" },
      repositories: ["api", "web"],
      permissions: { contents: "read", metadata: "read" },
    });
    await installGitHub(base, accessToken);
  }
  const endpoint = `${base}/graphql`;
  store.targets = Object.fromEntries(
    QUERY_NAMES.map((name) => [name, target(`${store.name} ${name}`, endpoint, QUERIES[name], expectations[name], accessToken)]),
  ) as Record<QueryName, Target>;
}

async function main(): Promise<void> {
  let scratch: BenchDatabase | undefined;
  let citusScratch: (BenchDatabase & { schema: string }) | undefined;
  let yogaServer: Server | undefined;
  let github: FakeGitHub | undefined;
  const stores: Store[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    void clientThread.terminate();
    console.error(`\n${signal}: stopping, then dropping the scratch database${citusUrl ? " and schema" : ""}`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    // The pool Keyplane opens by default (DATABASE_POOL_MAX).
    const poolMax = loadConfig({}).database.poolMax;
    scratch = await createBenchDatabase("reads", serverUrl);
    stores.push({ name: "P", title: "PostgreSQL", url: scratch.url, handle: await openDatabase({ url: scratch.url, poolMax }) });
    stores.push({ name: "E", title: "embedded" });
    if (citusUrl) {
      citusScratch = await createBenchSchema("reads", citusUrl);
      stores.push({ name: "C", title: "Citus", url: citusUrl, handle: await openDatabase({ url: citusUrl, schema: citusScratch.schema, poolMax }) });
    }
    github = await startFakeGitHub();
    for (const store of stores) await prepare(store, github);

    // Y: bare Yoga on node:http.
    const yoga = createYoga({
      schema: createSchema({ typeDefs: "type Query { hello: String }", resolvers: { Query: { hello: () => "world" } } }),
      logging: false,
      graphiql: false,
    });
    yogaServer = createServer(yoga);
    const yogaUrl = `${await listen(yogaServer, await freePort())}${yoga.graphqlEndpoint}`;
    const contenders: Array<{ key: string; target: Target }> = [{ key: "Y", target: target("Y hello", yogaUrl, "{ hello }", expectations.hello) }];
    for (const store of stores) for (const name of QUERY_NAMES) contenders.push({ key: `${store.name}:${name}`, target: store.targets![name] });

    const version = async (store: Store) => (await sql<{ v: string }>`select current_setting('server_version') as v`.execute(store.kp!.database.db)).rows[0]!.v;
    console.log(`bench:reads  P on PostgreSQL ${await version(stores[0]!)}, database ${new URL(scratch.url).pathname.slice(1)}`);
    console.log(`  E on embedded PGlite (PostgreSQL ${await version(stores[1]!)}) in ${path.join(dataRoot, "E")}`);
    const citus = stores.find((s) => s.name === "C");
    if (citus) {
      const { rows } = await sql<{ version: string | null }>`select (select extversion from pg_extension where extname = 'citus') as version`.execute(
        citus.kp!.database.db,
      );
      console.log(`  C on Citus ${rows[0]?.version ?? "(extension not found)"} at ${new URL(citusUrl!).host}, schema ${citusScratch!.schema}`);
    }
    console.log(
      `  ${REQUESTS} requests per run, ${CONCURRENCY} concurrent clients, ${ROUNDS} round${ROUNDS === 1 ? "" : "s"} of ${contenders.length} contenders, warm-up ${WARMUP} each, pool ${poolMax}`,
    );
    console.log(
      `  tenant ${TENANT} (enterprise): ${AGENTS} agents, ${AGENTS * TASKS_PER_AGENT} tasks, ${INSTALLATIONS} GitHub installations; an admin's token`,
    );
    for (const name of QUERY_NAMES) console.log(`  ${name.padEnd(13)} ${QUERIES[name]}`);
    console.log("");

    for (const c of contenders) await verify(c.target);
    if (WARMUP > 0) for (const c of contenders) await drive(c.target, WARMUP, CONCURRENCY);

    const results = new Map<string, Run[]>(contenders.map((c) => [c.key, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      const parts: string[] = [];
      for (const c of contenders) {
        const r = await drive(c.target, REQUESTS, CONCURRENCY);
        results.get(c.key)!.push(r);
        parts.push(`${c.key} ${fmtRate(r.rate)}/s`);
      }
      console.log(`  round ${round}: ${parts.join("  ")}`);
    }
    const best = (key: string) => results.get(key)!.reduce((a, b) => (b.rate > a.rate ? b : a));

    const trips = new Map<string, number>();
    for (const store of stores) {
      for (const name of QUERY_NAMES)
        trips.set(`${store.name}:${name}`, await roundTripsPerRequest(store.kp!.deps.metrics, COUNTED, () => send(store.targets![name])));
    }

    const y = best("Y");
    const header = ["contender", "requests/s", "p50 ms", "p99 ms", "vs Y", "vs P", "loop ms/req", "Y/loop", "round trips", "goal", "met"];
    const table: string[][] = [
      ["Y  bare Yoga { hello }", fmtRate(y.rate), y.p50.toFixed(2), y.p99.toFixed(2), "1.000", "", y.loopMs.toFixed(3), "1.000", "", "", ""],
    ];
    const missed: string[] = [];
    for (const store of stores) {
      for (const name of QUERY_NAMES) {
        const key = `${store.name}:${name}`;
        const run = best(key);
        const ratio = run.rate / y.rate;
        const t = trips.get(key)!;
        const goal = goalOf(store.name, name);
        const met = goal ? ratio >= goal.ratio && (goal.maxTrips === undefined || t <= goal.maxTrips) : undefined;
        if (met === false) missed.push(key);
        table.push([
          `${store.name}  ${store.title} ${name}`,
          fmtRate(run.rate),
          run.p50.toFixed(2),
          run.p99.toFixed(2),
          ratio.toFixed(3),
          store.name === "P" ? "" : (run.rate / best(`P:${name}`).rate).toFixed(3),
          run.loopMs.toFixed(3),
          (y.loopMs / run.loopMs).toFixed(3),
          fmtTrips(t),
          goal ? `>= ${goal.ratio.toFixed(2)}${goal.maxTrips === undefined ? "" : `, <= ${goal.maxTrips} trip${goal.maxTrips === 1 ? "" : "s"}`}` : "",
          met === undefined ? "" : met ? "yes" : "NO",
        ]);
      }
    }
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
    const line = `  +${widths.map((w) => "-".repeat(w + 2)).join("+")}+`;
    const row = (cells: string[]) => `  | ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
    console.log(
      `\n  best of ${ROUNDS} run${ROUNDS === 1 ? "" : "s"} each (its p50/p99 under ${CONCURRENCY} clients); round trips: mean of ${COUNTED} sequential requests, as the server counts them`,
    );
    console.log(
      "  loop ms/req: the servers' event loop busy per request in that run (PostgreSQL's own work not included; the embedded database's is); Y/loop: bare Yoga's over it",
    );
    console.log(`${line}\n${row(header)}\n${line}`);
    for (const r of table) console.log(row(r));
    console.log(line);
    console.log(`  goals (issue 16): on PostgreSQL { me } >= 0.8 of Y with 0 round trips, each list >= 0.5 with <= 4; embedded, half those ratios`);
    console.log(`  ${missed.length ? `not met: ${missed.join(", ")}` : "all goals met"}`);
  } finally {
    if (yogaServer) await closeServer(yogaServer).catch(() => {});
    for (const store of stores) {
      await store.kp?.close().catch(() => {});
      await store.handle?.close().catch(() => {});
    }
    await github?.close().catch(() => {});
    await scratch?.drop();
    await citusScratch?.drop();
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    if (interrupted) process.exit(130);
    console.error("bench:reads failed:", error);
    process.exit(1);
  },
);
