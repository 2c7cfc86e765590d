/**
 * npm run bench:reads
 *
 * Throughput of dashboard GraphQL reads over HTTP (requests/s), BENCH_CONCURRENCY clients each
 * sending its next request as soon as the previous one is answered (keep-alive), against a baseline
 * measured in the same run:
 *   Y  a bare graphql-yoga server (createYoga + createSchema, `type Query { hello: String }`, on
 *      node:http) answering `{ hello }`: what HTTP + Yoga cost with nothing behind them;
 *   P  Keyplane (createKeyplane, rate limits off, LOG_LEVEL silent, a pool of DATABASE_POOL_MAX's
 *      default) on a scratch database of DATABASE_URL's PostgreSQL, one enterprise tenant with 50
 *      agents, a viewer's access token; two queries, each a contender of its own:
 *        me      `{ me { __typename } }` (token verification, the tenant's checks, the cheapest field)
 *        agents  `{ agents(first: 50) { nodes { id name status connection lastSeenAt } } }`;
 *   C  with CITUS_URL (a Citus coordinator, as Keyplane's role): P again on Citus, in a schema of its
 *      own that `migrate` distributes (a tenant's rows on one worker).
 * The clients run in the same process as the servers (one event loop for all; the machine's cores are
 * shared with PostgreSQL). All are warmed up, then run alternately BENCH_ROUNDS times; the best run
 * of each counts. Then the database round trips per request of each query are counted on a second,
 * short-lived Keyplane whose store is a one-connection counting handle (bench/roundTrips.ts): 20
 * sequential requests of each (after 3 uncounted ones), the statements Keyplane sends, and on Citus
 * the commands the coordinator sends on to workers.
 * Prints requests/s of each, P/Y and C/Y, C/P (the Citus overhead) and the round trips per request.
 * Always exits 0 once measured (a benchmark, not a test); 2 without DATABASE_URL or with a bad setting.
 *
 * Environment: DATABASE_URL (required), CITUS_URL (optional), BENCH_CONCURRENCY (default 16),
 * BENCH_REQUESTS (requests per run, default 3000), BENCH_ROUNDS (default 2), BENCH_WARMUP (requests
 * per contender before the rounds, default 300).
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createSchema, createYoga } from "graphql-yoga";
import { sql } from "kysely";
import { createAgent } from "../src/app/agents/manageAgents.ts";
import { issueAccessToken } from "../src/app/credentials.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { createKeyplane, type Keyplane } from "../src/main.ts";
import { openDatabase, type DatabaseHandle } from "../src/store/db.ts";
import { migrateToLatest } from "../src/store/migrate.ts";
import { freePort } from "../test/testkit/providerWorld.ts";
import { createBenchDatabase, createBenchSchema, type BenchDatabase } from "./benchDatabase.ts";
import { intEnv } from "./benchEnv.ts";
import { countingHandle } from "./roundTrips.ts";

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
const COUNTED = 20;
const TENANT = "bench-reads";

const QUERIES = {
  me: "{ me { __typename } }",
  agents: `{ agents(first: ${AGENTS}) { nodes { id name status connection lastSeenAt } } }`,
} as const;
type QueryName = keyof typeof QUERIES;
const QUERY_NAMES = Object.keys(QUERIES) as QueryName[];

/** What a valid answer of each looks like (checked once per contender, before the clock starts). */
const expectations: Record<QueryName | "hello", (data: any) => boolean> = {
  hello: (data) => data?.hello === "world",
  me: (data) => data?.me?.__typename === "Viewer",
  agents: (data) => Array.isArray(data?.agents?.nodes) && data.agents.nodes.length === AGENTS,
};

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
  if (res.status !== 200 || body.errors || !t.expect(body.data)) throw new Error(`${t.label}: unexpected answer (HTTP ${res.status}): ${JSON.stringify(body).slice(0, 500)}`);
}

/** `count` requests from `clients` concurrent loops; returns requests per second. */
async function drive(t: Target, count: number, clients: number): Promise<{ rate: number; seconds: number }> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(clients, count) }, async () => {
      while (next < count && !interrupted) {
        next++;
        await send(t);
      }
    }),
  );
  checkInterrupted();
  const seconds = (performance.now() - started) / 1000;
  return { rate: count / seconds, seconds };
}

const fmtRate = (n: number) => Math.round(n).toLocaleString("en-US");

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

// Every Keyplane of the run shares the keys: a token minted by one is good on the other of its store.
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const encryptionKeys = `bench:${Buffer.alloc(32, 7).toString("base64")}`;
const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-reads-"));

/** A Keyplane on `database` (opened, migrated and closed by the caller), listening on a free loopback port. */
async function startKeyplane(storeUrl: string, database: DatabaseHandle): Promise<{ kp: Keyplane; endpoint: string }> {
  const port = await freePort();
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    PORT: String(port),
    KEYPLANE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    KEYPLANE_DATA_DIR: dataDir,
    DATABASE_URL: storeUrl,
    KEYPLANE_MIGRATE_ON_START: "false",
    KEYPLANE_SIGNING_KEY: signingKey,
    KEYPLANE_ENCRYPTION_KEYS: encryptionKeys,
    RATE_LIMITS: "off",
    // The background jobs stay out of the measurement (none is due within a run).
    AGENT_SWEEP_INTERVAL_SECONDS: "3600",
    CREDENTIAL_REFRESH_INTERVAL_SECONDS: "3600",
    AUDIT_CHECKPOINT_INTERVAL_SECONDS: "86400",
  });
  const kp = await createKeyplane(config, { database, logger: createLogger({ level: "silent" }) });
  try {
    const base = await kp.listen(port, "127.0.0.1");
    return { kp, endpoint: `${base}/graphql` };
  } catch (error) {
    await kp.close().catch(() => {});
    throw error;
  }
}

/** Keyplane on one store: P (PostgreSQL) or C (Citus). */
interface Store {
  name: "P" | "C";
  url: string;
  schema?: string;
  citus: boolean;
  handle: DatabaseHandle;
  kp?: Keyplane;
  token?: string;
  targets?: Record<QueryName, Target>;
}

/** Migrates the store, starts Keyplane on it, seeds the tenant and its agents, mints a viewer's token. */
async function prepare(store: Store): Promise<void> {
  await migrateToLatest(store.handle);
  checkInterrupted();
  const { kp, endpoint } = await startKeyplane(store.url, store.handle);
  store.kp = kp;
  const actor = systemActor("bench:reads", TENANT);
  await createTenant(kp.deps, systemActor("bench:reads"), { id: TENANT, name: "Bench reads", tier: "enterprise" });
  for (let i = 0; i < AGENTS; i++) {
    checkInterrupted();
    await createAgent(kp.deps, actor, { name: `Agent ${String(i).padStart(2, "0")}`, type: "bench-bot", tags: ["bench"] });
  }
  const issued = await issueAccessToken(kp.deps, systemActor("bench:reads"), { tenantId: TENANT, subject: "viewer@bench-reads", kind: "user", roles: ["viewer"], issuedVia: "cli" });
  store.token = issued.accessToken;
  store.targets = {
    me: target(`${store.name} me`, endpoint, QUERIES.me, expectations.me, store.token),
    agents: target(`${store.name} agents`, endpoint, QUERIES.agents, expectations.agents, store.token),
  };
}

/**
 * Statements Keyplane sends, and commands the coordinator sends on to workers, per request of each
 * query (mean of COUNTED sequential requests), on a second Keyplane whose store is a counting handle.
 */
async function roundTripsPerRequest(store: Store): Promise<Record<QueryName, { statements: number; workerCommands: number }>> {
  const counting = await countingHandle(store.url, { schema: store.schema, citus: store.citus });
  let kp: Keyplane | undefined;
  try {
    const started = await startKeyplane(store.url, counting.handle);
    kp = started.kp;
    const result = {} as Record<QueryName, { statements: number; workerCommands: number }>;
    for (const name of QUERY_NAMES) {
      const t = target(`${store.name} ${name} (counted)`, started.endpoint, QUERIES[name], expectations[name], store.token);
      await verify(t);
      for (let i = 0; i < 2; i++) await send(t);
      const cost = await counting.measure(async () => {
        for (let i = 0; i < COUNTED; i++) {
          checkInterrupted();
          await send(t);
        }
      });
      result[name] = { statements: cost.statements / COUNTED, workerCommands: cost.workerCommands / COUNTED };
    }
    return result;
  } finally {
    await kp?.close().catch(() => {});
    await counting.handle.close().catch(() => {});
  }
}

async function main(): Promise<void> {
  let scratch: BenchDatabase | undefined;
  let citusScratch: (BenchDatabase & { schema: string }) | undefined;
  let yogaServer: Server | undefined;
  const stores: Store[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    console.error(`\n${signal}: stopping, then dropping the scratch database${citusUrl ? " and schema" : ""}`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    // The pool Keyplane opens by default (DATABASE_POOL_MAX).
    const poolMax = loadConfig({}).database.poolMax;
    scratch = await createBenchDatabase("reads", serverUrl);
    stores.push({ name: "P", url: scratch.url, citus: false, handle: await openDatabase({ url: scratch.url, poolMax }) });
    if (citusUrl) {
      citusScratch = await createBenchSchema("reads", citusUrl);
      stores.push({ name: "C", url: citusUrl, schema: citusScratch.schema, citus: true, handle: await openDatabase({ url: citusUrl, schema: citusScratch.schema, poolMax }) });
    }
    for (const store of stores) await prepare(store);
    const [pg, citus] = stores as [Store, Store | undefined];

    // Y: bare Yoga on node:http.
    const yoga = createYoga({ schema: createSchema({ typeDefs: "type Query { hello: String }", resolvers: { Query: { hello: () => "world" } } }), logging: false, graphiql: false });
    yogaServer = createServer(yoga);
    const yogaUrl = `${await listen(yogaServer, await freePort())}${yoga.graphqlEndpoint}`;
    const contenders: Array<{ key: string; target: Target }> = [{ key: "Y", target: target("Y hello", yogaUrl, "{ hello }", expectations.hello) }];
    for (const store of stores) for (const name of QUERY_NAMES) contenders.push({ key: `${store.name}:${name}`, target: store.targets![name] });

    const { rows: info } = await sql<{ version: string }>`select current_setting('server_version') as version`.execute(pg.handle.db);
    console.log(`bench:reads  PostgreSQL ${info[0]!.version}, database ${new URL(scratch.url).pathname.slice(1)}`);
    if (citus) {
      const { rows } = await sql<{ version: string | null }>`select (select extversion from pg_extension where extname = 'citus') as version`.execute(citus.handle.db);
      console.log(`  C on Citus ${rows[0]?.version ?? "(extension not found)"} at ${new URL(citusUrl!).host}, schema ${citusScratch!.schema}`);
    }
    console.log(`  ${REQUESTS} requests per run, ${CONCURRENCY} concurrent clients, ${ROUNDS} round${ROUNDS === 1 ? "" : "s"} of ${contenders.map((c) => c.key).join("/")}, warm-up ${WARMUP} each, pool ${poolMax}`);
    console.log(`  tenant ${TENANT} (enterprise), ${AGENTS} agents, a viewer's token\n`);

    for (const c of contenders) await verify(c.target);
    if (WARMUP > 0) for (const c of contenders) await drive(c.target, WARMUP, CONCURRENCY);

    const results = new Map<string, number[]>(contenders.map((c) => [c.key, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      const parts: string[] = [];
      for (const c of contenders) {
        const r = await drive(c.target, REQUESTS, CONCURRENCY);
        results.get(c.key)!.push(r.rate);
        parts.push(`${c.key} ${fmtRate(r.rate)}/s (${r.seconds.toFixed(2)} s)`);
      }
      console.log(`  round ${round}: ${parts.join("   ")}`);
    }
    const best = (key: string) => Math.max(...results.get(key)!);

    const trips = new Map<string, { statements: number; workerCommands: number }>();
    for (const store of stores) {
      const counted = await roundTripsPerRequest(store);
      for (const name of QUERY_NAMES) trips.set(`${store.name}:${name}`, counted[name]);
    }

    const y = best("Y");
    const header = ["contender", "requests/s", "vs Y", "C/P", "statements/request", "coordinator->worker/request"];
    const table: string[][] = [["Y  bare Yoga { hello }", fmtRate(y), "1.000", "", "", ""]];
    for (const store of stores) {
      for (const name of QUERY_NAMES) {
        const key = `${store.name}:${name}`;
        const rate = best(key);
        const t = trips.get(key)!;
        table.push([
          `${store.name}  ${store.citus ? "Citus" : "PostgreSQL"} ${name === "me" ? QUERIES.me : `agents(first: ${AGENTS})`}`,
          fmtRate(rate),
          `${store.name}/Y ${(rate / y).toFixed(3)}`,
          store.citus ? (rate / best(`P:${name}`)).toFixed(3) : "",
          t.statements.toFixed(1),
          store.citus ? t.workerCommands.toFixed(1) : "",
        ]);
      }
    }
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
    const line = `  +${widths.map((w) => "-".repeat(w + 2)).join("+")}+`;
    const row = (cells: string[]) => `  | ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
    console.log(`\n  best of ${ROUNDS} run${ROUNDS === 1 ? "" : "s"} each; round trips: mean of ${COUNTED} sequential requests\n${line}\n${row(header)}\n${line}`);
    for (const r of table) console.log(row(r));
    console.log(line);
  } finally {
    if (yogaServer) await closeServer(yogaServer).catch(() => {});
    for (const store of stores) {
      await store.kp?.close().catch(() => {});
      await store.handle.close().catch(() => {});
    }
    await scratch?.drop();
    await citusScratch?.drop();
    rmSync(dataDir, { recursive: true, force: true });
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
