import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { connect } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../testkit/providerWorld.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { killServedProcesses, serveProcess } from "../testkit/servedProcess.ts";
import { createScratchDatabase, type ScratchDatabase } from "../testkit/testDatabase.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Two real `keyplane serve` processes sharing their rate limits: through one Redis (each process
// with its own embedded database, one signing key and the same bootstrap tenant, so only Redis is
// shared), and through one PostgreSQL. Then Redis is stopped mid-run: the in-memory insurance
// limiter answers at once, nothing hangs.

const scratch = scratchDirectory("keyplane-limits-e2e-");

const hasRedis = spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
if (!hasRedis) console.warn("redis-server is not installed: the Redis cases of test/e2e/rateLimits.test.ts are skipped");

/** Only the tier's minute quota decides: no burst cap, no per-principal limit in the way. */
const TIER_ONLY = { RATE_LIMITS: "on", RATE_LIMIT_BURST_PER_10_SECONDS: "free:100000", RATE_LIMIT_PRINCIPAL_PER_MINUTE: "100000" };
/** Exactness is about sharing: a loaded machine must not send counts to the insurance limiter by a timeout. */
const PATIENT = { RATE_LIMIT_STORE_TIMEOUT_MS: "30000" };
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

afterEach(killServedProcesses);

/** Every process here: one signing key (an admin token works on all), only the tier's quota in play. */
const serve = (name: string, env: Record<string, string>) => serveProcess(`limits-e2e-${name}`, { KEYPLANE_SIGNING_KEY: signingKey, ...TIER_ONLY, ...env });

async function ping(port: number, token: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: "{ __typename }" }),
    // No request may wait on an unreachable store.
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** `count` requests to each process at once, `parallel` at a time per process; the statuses. */
async function floodBoth(ports: number[], token: string, count: number, parallel = 15): Promise<number[]> {
  const perProcess = async (port: number) => {
    const statuses: number[] = [];
    for (let i = 0; i < count; i += parallel)
      statuses.push(...(await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, () => ping(port, token)))));
    return statuses;
  };
  return (await Promise.all(ports.map(perProcess))).flat();
}

async function metric(port: number, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const match = pattern.exec(text);
  return match ? Number(match[1]) : 0;
}

// Each test starts two Keyplane processes, each opening its own embedded database: on a loaded two-core
// machine that alone can take most of the suite-wide 60 s.
const SPAWNS_TWO = 180_000;

describe.skipIf(!hasRedis)("two processes on one Redis", () => {
  let redis: ChildProcess;
  let redisPort: number;
  beforeAll(async () => {
    redisPort = await freePort();
    // A Redis of this suite's own on a free port: the machine's Redis is never touched.
    redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    await waitFor(
      "redis",
      () =>
        new Promise<boolean>((resolve) =>
          connect(redisPort, "127.0.0.1")
            .once("connect", function (this: import("node:net").Socket) {
              this.destroy();
              resolve(true);
            })
            .once("error", () => resolve(false)),
        ),
      60_000,
    );
  });
  afterAll(() => {
    if (redis.exitCode === null) redis.kill("SIGKILL");
  });

  it(
    "accept together exactly the tier's quota per window; with Redis stopped mid-run every request is still answered at once",
    async () => {
      // Redis failing is noticed at once (the connection drops), not by the timeout.
      const env = { REDIS_URL: `redis://127.0.0.1:${redisPort}`, ...PATIENT };
      const [a, b] = await Promise.all([
        serve("redis-a", { ...env, KEYPLANE_DATA_DIR: scratch.fresh() }),
        serve("redis-b", { ...env, KEYPLANE_DATA_DIR: scratch.fresh() }),
      ]);
      // Each bootstrapped its own tenant 'default'; one signing key, so a's admin token works on both.
      const token = a.adminToken();
      // Exact sharing needs both connected to Redis: until then (a loaded machine) each counts alone.
      for (const p of [a, b])
        await waitFor(`${p.name} connected to Redis`, async () => (await metric(p.port, /keyplane_rate_limit_store_up\{store="redis"\} (\d+)/)) === 1, 60_000);

      const statuses = await floodBoth([a.port, b.port], token, 45);
      expect(await metric(a.port, /keyplane_rate_limit_store_fallbacks_total\{store="redis"\} (\d+)/)).toBe(0);
      expect(await metric(b.port, /keyplane_rate_limit_store_fallbacks_total\{store="redis"\} (\d+)/)).toBe(0);
      expect(statuses.filter((s) => s === 200)).toHaveLength(60);
      expect(statuses.filter((s) => s === 429)).toHaveLength(30);

      redis.kill("SIGKILL");
      await new Promise((resolve) => redis.once("exit", resolve));
      await waitFor("a to notice Redis gone", async () => (await metric(a.port, /keyplane_rate_limit_store_up\{store="redis"\} (\d+)/)) === 0);
      // The insurance limiter of each process counts from zero: requests are answered, not held.
      const after = await floodBoth([a.port, b.port], token, 10, 5);
      expect(after).toHaveLength(20);
      expect(after.every((s) => s === 200)).toBe(true);
      expect(await metric(a.port, /keyplane_rate_limit_store_fallbacks_total\{store="redis"\} (\d+)/)).toBeGreaterThan(0);
      expect(a.output()).toContain("rate-limit store unavailable or slow");
    },
    SPAWNS_TWO,
  );
});

describe.skipIf(!process.env.TEST_DATABASE_URL)("two processes on one PostgreSQL (no Redis)", () => {
  let url: string;
  let database: ScratchDatabase | undefined;
  beforeAll(async () => {
    database = await createScratchDatabase("kp_limits_e2e");
    url = database.url;
  });
  afterAll(async () => {
    await database?.drop();
  });

  it(
    "accept together exactly the tier's quota per window",
    async () => {
      const env = { ...PATIENT, DATABASE_URL: url, KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}` };
      const a = await serve("pg-a", { ...env, KEYPLANE_DATA_DIR: scratch.fresh(), KEYPLANE_MIGRATE_ON_START: "true" });
      const b = await serve("pg-b", { ...env, KEYPLANE_DATA_DIR: scratch.fresh() });
      const token = a.adminToken();
      const statuses = await floodBoth([a.port, b.port], token, 45);
      expect(statuses.filter((s) => s === 200)).toHaveLength(60);
      expect(statuses.filter((s) => s === 429)).toHaveLength(30);
    },
    SPAWNS_TWO,
  );
});
