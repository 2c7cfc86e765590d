/**
 * npm run bench:streams
 *
 * Log streams (issue 20) on the real server (createKeyplane, listen(): its deliverer runs), each
 * figure against a baseline measured in the same run:
 *   1  One stream: a tenant with BENCH_EVENTS events (default 20,000) and one webhook stream to the
 *      receiver fake (test/fakes/logReceivers.ts), replayed from sequence 1 (replayLogStream): events/s
 *      until the fake accepted the last one. Baseline B: a bare loop reading the same events in batches
 *      of LOG_STREAM_BATCH_SIZE (keyplane_events_after, as the deliverer reads), signing them the same
 *      way (buildRequest) and POSTing them the same way (safePost: a new checked connection per batch)
 *      to the same fake, without lease or cursor. Alternating, best of BENCH_ROUNDS.
 *   2  100 streams: 100 tenants with BENCH_EVENTS_PER_TENANT events each (default 500), one webhook
 *      stream each to the bench's own receiver (HTTPS, the fake's certificate, signatures verified with
 *      standardwebhooks), all replayed from 1 at once: total events/s until the last arrived; against 1.
 *   3  Lag: BENCH_RATE appends/s (200) for BENCH_SECONDS (20) spread over the same 100 tenants, their
 *      streams active: arrival at the receiver - the event's occurredAt, p50/p99. Baseline: the floor,
 *      one event at a time appended, read and posted by the bare loop (same receiver, same clock).
 *   4  Append rate: BENCH_APPENDS appends (5,000) from 8 concurrent writers through appendEvents over the
 *      100 tenants (as bench:append does; each lets the event loop turn after each append, as a server's
 *      requests do) with their 100 streams active against paused (the deliverer running and holding
 *      none). Alternating, best of BENCH_ROUNDS; goal >= 0.9.
 * Everything runs in this process (server, deliverer, receivers) and shares its event loop. Embedded
 * PGlite unless BENCH_DATABASE_URL or DATABASE_URL names a PostgreSQL server: then a database of the
 * bench's own there, dropped at the end. Always exits 0 once measured (a benchmark, not a test).
 *
 * Environment: BENCH_DATABASE_URL / DATABASE_URL, BENCH_EVENTS (20000), BENCH_EVENTS_PER_TENANT (500),
 * BENCH_STREAMS (100), BENCH_RATE (200), BENCH_SECONDS (20), BENCH_APPENDS (5000), BENCH_ROUNDS (2),
 * LOG_STREAM_BATCH_SIZE (the server's default, 500).
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import { Webhook } from "standardwebhooks";
import { createLogStream, pauseLogStream, replayLogStream, resumeLogStream } from "../src/app/logStreams/manageLogStreams.ts";
import { destinationPolicy } from "../src/app/logStreams/destinationInput.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { parseLogStreamSettings } from "../src/domain/logStream/decide.ts";
import { AccessDenied } from "../src/domain/security/events.ts";
import { createLogger } from "../src/logger.ts";
import { buildRequest, verdictOf, type DestinationSecrets } from "../src/logStreams/destinations.ts";
import { safePost } from "../src/logStreams/safeRequest.ts";
import { createKeyplane, type Keyplane } from "../src/main.ts";
import { eventRecordOf } from "../src/store/audit/readLogRecords.ts";
import { withPlatform, withTenant } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { eventsAfterAlone } from "../src/store/events/readTenantLog.ts";
import { startLogReceivers, type LogReceivers } from "../test/fakes/logReceivers.ts";
import { selfSignedCert } from "../test/testkit/selfSignedCert.ts";
import { createBenchDatabase, type BenchDatabase } from "./benchDatabase.ts";
import { intEnv } from "./benchEnv.ts";

const EVENTS = intEnv("BENCH_EVENTS", 20_000);
const PER_TENANT = intEnv("BENCH_EVENTS_PER_TENANT", 500);
const STREAMS = intEnv("BENCH_STREAMS", 100);
const RATE = intEnv("BENCH_RATE", 200);
const SECONDS = intEnv("BENCH_SECONDS", 20);
const APPENDS = intEnv("BENCH_APPENDS", 5_000);
const ROUNDS = intEnv("BENCH_ROUNDS", 2);
const WRITERS = 8;
const SEED_CHUNK = 500;
const FLOOR_SAMPLES = 200;
const GOAL_APPEND_RATIO = 0.9;

const serverUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL;

// ---- the bench's own webhook receiver: arrival times ----

interface BenchReceiver {
  url: string;
  /** Registers an endpoint (`${url}/hook/<name>`) verifying with the stream's secret. */
  endpoint(name: string, secret: string): string;
  /** Events accepted so far, all endpoints. */
  readonly total: number;
  /** Requests accepted so far. */
  readonly requests: number;
  /** The highest sequence accepted of each stream. */
  lastSequence(logStreamId: string): number;
  /** Arrival - occurredAt (ms) of the accepted events whose data.reason is `marker`. */
  lags(marker: string): number[];
  close(): Promise<void>;
}

async function startBenchReceiver(): Promise<BenchReceiver> {
  const { key, cert } = selfSignedCert();
  const hooks = new Map<string, Webhook>();
  const last = new Map<string, number>();
  const lagsOf = new Map<string, number[]>();
  let total = 0;
  let requests = 0;
  const server = createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const arrived = Date.now();
      const hook = hooks.get(/^\/hook\/([^/?]+)$/.exec(req.url ?? "")?.[1] ?? "");
      if (!hook || req.method !== "POST") return void res.writeHead(404).end();
      const headers: Record<string, string> = {};
      for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) headers[name] = String(req.headers[name] ?? "");
      let payload: { logStreamId: string; events: Array<{ sequence: number; occurredAt: string; data: { reason?: string } }> };
      try {
        payload = hook.verify(Buffer.concat(chunks), headers) as typeof payload;
      } catch {
        return void res.writeHead(400).end("bad-signature");
      }
      requests++;
      total += payload.events.length;
      for (const event of payload.events) {
        if (event.sequence > (last.get(payload.logStreamId) ?? 0)) last.set(payload.logStreamId, event.sequence);
        const lags = event.data.reason ? lagsOf.get(event.data.reason) : undefined;
        lags?.push(arrived - Date.parse(event.occurredAt));
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    endpoint(name, secret) {
      hooks.set(name, new Webhook(secret));
      return `${url}/hook/${name}`;
    },
    get total() {
      return total;
    },
    get requests() {
      return requests;
    },
    lastSequence: (logStreamId) => last.get(logStreamId) ?? 0,
    lags(marker) {
      let lags = lagsOf.get(marker);
      if (!lags) lagsOf.set(marker, (lags = []));
      return lags;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---- helpers ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until true; throws after `timeoutMs`. */
async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 120_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const pct = (values: number[], p: number) => {
  if (!values.length) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const fmtRate = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => `${n.toFixed(1)} ms`;

let interrupted: NodeJS.Signals | undefined;

const denied = (reason: string, n: number) =>
  AccessDenied({ level: "warning", status: "denied", reason, resource: "graphql", action: "agent:write", details: { n } });
const someone = { actor: { subject: "someone", kind: "user" as const, roles: ["viewer" as const] } };

// ---- the run ----

const scratch: BenchDatabase | undefined = serverUrl ? await createBenchDatabase("streams", serverUrl) : undefined;
const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-streams-"));
let fake: LogReceivers | undefined;
let mine: BenchReceiver | undefined;
let kp: Keyplane | undefined;

let cleaned: Promise<void> | undefined;
const cleanup = () =>
  (cleaned ??= (async () => {
    await kp?.close().catch((error) => console.error("closing the server failed:", error));
    await fake?.close();
    await mine?.close();
    await scratch?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  })());
const onSignal = (signal: NodeJS.Signals) => {
  interrupted = signal;
  console.error(`\n${signal}: stopping, then dropping the scratch database`);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

async function main(): Promise<void> {
  fake = await startLogReceivers();
  mine = await startBenchReceiver();
  const receiver = mine;
  const receivers = fake;
  // Both receivers serve the same self-signed certificate (selfSignedCert is made once per process).
  writeFileSync(path.join(dataDir, "ca.pem"), receivers.caPem);
  const env = {
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    KEYPLANE_DATA_DIR: dataDir,
    LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1",
    LOG_STREAM_CA_FILE: path.join(dataDir, "ca.pem"),
    ...(process.env.LOG_STREAM_BATCH_SIZE ? { LOG_STREAM_BATCH_SIZE: process.env.LOG_STREAM_BATCH_SIZE } : {}),
    ...(scratch
      ? {
          DATABASE_URL: scratch.url,
          DATABASE_POOL_MAX: "20",
          KEYPLANE_MIGRATE_ON_START: "true",
          KEYPLANE_ENCRYPTION_KEYS: `bench:${Buffer.alloc(32, 7).toString("base64")}`,
          KEYPLANE_SIGNING_KEY: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        }
      : {}),
  };
  const config = loadConfig(env);
  kp = await createKeyplane(config, { logger: createLogger({ level: "silent" }) });
  await kp.listen(0, "127.0.0.1");
  const deps = kp.deps;
  const db = deps.db;
  const batchSize = config.logStreams.batchSize;
  const system = systemActor("bench:streams");
  const admin = (tenantId: string) => systemActor("bench:streams", tenantId);
  const webhookSettings = parseLogStreamSettings("webhook", {});

  let backend = "embedded PGlite";
  if (scratch) {
    const { rows } = await sql<{ v: string }>`select current_setting('server_version') as v`.execute(db);
    backend = `PostgreSQL ${rows[0]?.v ?? ""}, database ${new URL(scratch.url).pathname.slice(1)}`;
  }
  console.log(`bench:streams on ${backend}; batches of ${batchSize}, best of ${ROUNDS} where alternating`);

  /** `count` access.denied events appended to the tenant's log, SEED_CHUNK per append. */
  async function seed(tenantId: string, count: number): Promise<void> {
    for (let done = 0; done < count; done += SEED_CHUNK) {
      const n = Math.min(SEED_CHUNK, count - done);
      await appendEvents(db, {
        tenantId,
        streamType: "security",
        streamId: "access.denied",
        expectedVersion: "any",
        events: Array.from({ length: n }, (_, i) => denied("seed", done + i)),
        metadata: someone,
        occurredAt: new Date(),
      });
    }
  }
  async function heads(tenantIds: string[]): Promise<Map<string, number>> {
    const rows = await withPlatform(db, (trx) =>
      trx.selectFrom("tenant_heads").select(["tenant_id", "last_seq"]).where("tenant_id", "in", tenantIds).execute(),
    );
    return new Map(rows.map((r) => [r.tenant_id, Number(r.last_seq)]));
  }
  const headOf = async (tenantId: string) => (await heads([tenantId])).get(tenantId) ?? 0;
  async function healthOf(tenantId: string, logStreamId: string): Promise<string | undefined> {
    const row = await withTenant(db, tenantId, (trx) =>
      trx.selectFrom("log_streams").select("health").where("tenant_id", "=", tenantId).where("log_stream_id", "=", logStreamId).executeTakeFirst(),
    );
    return row?.health;
  }

  /** The bare loop: the tenant's events after `after` up to `upTo`, read, signed and posted a batch at a time. */
  async function bareLoop(tenantId: string, logStreamId: string, secrets: DestinationSecrets, after: number, upTo: number, limit = batchSize): Promise<void> {
    const policy = destinationPolicy(config);
    while (after < upTo) {
      const events = await eventsAfterAlone(db, tenantId, after, Math.min(limit, upTo - after));
      if (events.length === 0) throw new Error(`no events after ${after} in ${tenantId}`);
      const now = new Date();
      const request = buildRequest("webhook", webhookSettings, secrets, { tenantId, logStreamId, events: events.map(eventRecordOf) }, now);
      const response = await safePost(
        request.url,
        { headers: request.headers, body: request.body, connectTimeoutMs: 5000, totalTimeoutMs: config.logStreams.timeoutMs },
        policy,
      );
      const verdict = verdictOf("webhook", response, now);
      if (verdict.outcome !== "delivered") throw new Error(`the bare loop's post was not delivered: ${verdict.reason}`);
      after = events.at(-1)!.sequence;
    }
  }

  // ======== 1. one stream, replayed from 1, against the bare loop ========
  const one = "bench-one";
  await createTenant(deps, system, { id: one, name: one, tier: "enterprise" });
  let t = performance.now();
  await seed(one, EVENTS);
  console.log(`  seeded ${EVENTS.toLocaleString("en-US")} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const created = await createLogStream(deps, admin(one), { name: "one", kind: "webhook", url: `${receivers.url}/webhook/one` });
  const oneId = created.logStream.logStreamId;
  receivers.webhookEndpoint("one", [created.secret!]);
  const bareSecrets: DestinationSecrets = { url: receivers.webhookEndpoint("one-bare", [created.secret!]), secret: created.secret! };
  // The stream delivers from its creation on; once healthy (an event of its own, delivered too) it is idle.
  await until("the one stream healthy", async () => (await healthOf(one, oneId)) === "healthy");
  const settledHead = await headOf(one);
  await until("the one stream caught up", () =>
    receivers.accepted("webhook").some((d) => d.logStreamId === oneId && (d.event as { sequence: number }).sequence === settledHead),
  );

  const single: number[] = [];
  const bare: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // S: the deliverer, replayed from 1 (the replay's own event comes last).
    let before = receivers.accepted("webhook").length;
    t = performance.now();
    await replayLogStream(deps, admin(one), oneId, 1);
    const upTo = await headOf(one);
    // In order from 1 once the replay is seen; a batch read as the replay committed may come first (at least once).
    await until(
      "the replay delivered",
      () => {
        const list = receivers.accepted("webhook");
        return list.length >= before + upTo && (list.at(-1)!.event as { sequence: number }).sequence === upTo;
      },
      600_000,
      5,
    );
    const s = upTo / ((performance.now() - t) / 1000);
    const got = new Set(
      receivers
        .accepted("webhook")
        .slice(before)
        .map((d) => (d.event as { sequence: number }).sequence),
    );
    for (let sequence = 1; sequence <= upTo; sequence++) if (!got.has(sequence)) throw new Error(`the replay lacks sequence ${sequence}`);
    single.push(s);
    // B: the bare loop, the same events.
    before = receivers.accepted("webhook").length;
    t = performance.now();
    await bareLoop(one, oneId, bareSecrets, 0, upTo);
    await until("the bare loop's events accepted", () => receivers.accepted("webhook").length >= before + upTo, 600_000, 5);
    const b = upTo / ((performance.now() - t) / 1000);
    bare.push(b);
    console.log(`  1, round ${round}: stream ${fmtRate(s)} events/s   bare loop ${fmtRate(b)} events/s   (${upTo.toLocaleString("en-US")} events)`);
  }

  // Done with: from here on the deliverer holds only the 100 streams.
  await pauseLogStream(deps, admin(one), oneId);

  // ======== 2. 100 streams at once ========
  const many = Array.from({ length: STREAMS }, (_, i) => `bench-many-${String(i).padStart(3, "0")}`);
  t = performance.now();
  for (const id of many) {
    await createTenant(deps, system, { id, name: id, tier: "enterprise" });
    await seed(id, PER_TENANT);
  }
  console.log(`  seeded ${STREAMS} tenants x ${PER_TENANT} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const streamOf = new Map<string, string>();
  for (const [i, id] of many.entries()) {
    const made = await createLogStream(deps, admin(id), { name: "siem", kind: "webhook", url: `${receiver.url}/hook/s${i}` });
    receiver.endpoint(`s${i}`, made.secret!);
    streamOf.set(id, made.logStream.logStreamId);
  }
  /** Every stream delivered its tenant's log up to the head as it is now. */
  const caughtUp = async (timeoutMs = 300_000) => {
    const at = await heads(many);
    await until("the streams caught up", () => many.every((id) => receiver.lastSequence(streamOf.get(id)!) >= at.get(id)!), timeoutMs);
  };
  await until("100 streams healthy", async () => {
    const rows = await withPlatform(db, (trx) => trx.selectFrom("log_streams").select("health").where("tenant_id", "in", many).execute());
    return rows.filter((r) => r.health === "healthy").length === STREAMS;
  });
  await caughtUp();

  const before2 = receiver.total;
  t = performance.now();
  await Promise.all(many.map((id) => replayLogStream(deps, admin(id), streamOf.get(id)!, 1)));
  const replayed = [...(await heads(many)).values()].reduce((a, b) => a + b, 0);
  await until("100 replays delivered", () => receiver.total >= before2 + replayed, 600_000, 5);
  const manySeconds = (performance.now() - t) / 1000;
  const manyRate = replayed / manySeconds;
  console.log(`  2: ${STREAMS} streams ${fmtRate(manyRate)} events/s in all (${replayed.toLocaleString("en-US")} events in ${manySeconds.toFixed(2)} s)`);

  // ======== 3. lag at RATE appends/s ========
  // The floor: one event at a time, appended to a tenant without a stream, read and posted at once.
  const floorTenant = "bench-floor";
  await createTenant(deps, system, { id: floorTenant, name: floorTenant, tier: "enterprise" });
  const floorSecrets: DestinationSecrets = { url: receiver.endpoint("floor", created.secret!), secret: created.secret! };
  const floorLags = receiver.lags("floor");
  for (let i = 0; i < FLOOR_SAMPLES; i++) {
    const [event] = await appendEvents(db, {
      tenantId: floorTenant,
      streamType: "security",
      streamId: "access.denied",
      expectedVersion: "any",
      events: [denied("floor", i)],
      metadata: someone,
      occurredAt: new Date(),
    });
    await bareLoop(floorTenant, "floor", floorSecrets, event!.sequence - 1, event!.sequence);
    await sleep(1000 / RATE);
  }

  const lags = receiver.lags("lag");
  const total3 = RATE * SECONDS;
  const requestsBefore = receiver.requests;
  const inflight = new Set<Promise<void>>();
  let late = 0;
  t = performance.now();
  for (let n = 0; n < total3 && !interrupted; n++) {
    const wait = t + (n * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
    else if (wait < -100) late++;
    while (inflight.size >= WRITERS) await Promise.race(inflight);
    const append: Promise<void> = appendEvents(db, {
      tenantId: many[n % STREAMS]!,
      streamType: "security",
      streamId: "access.denied",
      expectedVersion: "any",
      events: [denied("lag", n)],
      metadata: someone,
      occurredAt: new Date(),
    })
      .then(() => undefined)
      .finally(() => inflight.delete(append));
    inflight.add(append);
  }
  await Promise.all(inflight);
  const appendSeconds = (performance.now() - t) / 1000;
  await until("every lag event delivered", () => lags.length >= total3, 300_000);
  const lagRequests = receiver.requests - requestsBefore;
  console.log(
    `  3: ${total3} appends in ${appendSeconds.toFixed(1)} s (${late} more than 100 ms late): lag p50 ${ms(pct(lags, 50))} p99 ${ms(pct(lags, 99))} max ${ms(Math.max(...lags))}; ${lagRequests} deliveries (${(total3 / lagRequests).toFixed(2)} events each)`,
  );
  console.log(`     floor (append, read, post one event at a time): p50 ${ms(pct(floorLags, 50))} p99 ${ms(pct(floorLags, 99))}`);

  // ======== 4. append rate, 100 streams active against paused ========
  const actors = new Map(many.map((id) => [id, admin(id)]));
  const setStreams = async (active: boolean) => {
    for (const id of many) await (active ? resumeLogStream : pauseLogStream)(deps, actors.get(id)!, streamOf.get(id)!);
  };
  const drive = async (count: number): Promise<number> => {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        for (let i = next++; i < count && !interrupted; i = next++) {
          await appendEvents(db, {
            tenantId: many[i % STREAMS]!,
            streamType: "security",
            streamId: "access.denied",
            expectedVersion: "any",
            events: [denied("append", i)],
            metadata: someone,
            occurredAt: new Date(),
          });
          // A server's requests arrive through the event loop: let it turn. (The embedded database
          // answers without I/O: 8 writers' promises alone would keep it from turning for the whole run.)
          await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
    return count / ((performance.now() - started) / 1000);
  };
  const paused: number[] = [];
  const active: number[] = [];
  await setStreams(false);
  await until("the deliverer holding nothing", () => kp!.logStreams.holding === 0);
  await drive(Math.min(500, APPENDS)); // warm-up
  for (let round = 1; round <= ROUNDS; round++) {
    if (round > 1) {
      await setStreams(false);
      await until("the deliverer holding nothing", () => kp!.logStreams.holding === 0);
    }
    const none = await drive(APPENDS);
    paused.push(none);
    await setStreams(true);
    await caughtUp();
    const requests = receiver.requests;
    const delivered = receiver.total;
    const withStreams = await drive(APPENDS);
    active.push(withStreams);
    const meanwhile = { requests: receiver.requests - requests, events: receiver.total - delivered };
    const behind = await heads(many);
    const lagging = many.reduce((sum, id) => sum + Math.max(0, behind.get(id)! - receiver.lastSequence(streamOf.get(id)!)), 0);
    t = performance.now();
    await caughtUp();
    console.log(
      `  4, round ${round}: streams paused ${fmtRate(none)} appends/s   active ${fmtRate(withStreams)} appends/s (meanwhile ${meanwhile.requests} deliveries of ${meanwhile.events} events; ${lagging} behind at the end, caught up in ${((performance.now() - t) / 1000).toFixed(2)} s)`,
    );
  }

  // ======== the table ========
  const best = (xs: number[]) => Math.max(...xs);
  const S = best(single);
  const B = best(bare);
  const rows: [string, string][] = [
    [`1  one stream, replay of ${EVENTS.toLocaleString("en-US")} events (S)`, `${fmtRate(S)} events/s`],
    ["   bare loop: read, sign, post, no lease or cursor (B)", `${fmtRate(B)} events/s`],
    ["   ratio S/B", (S / B).toFixed(3)],
    [`2  ${STREAMS} streams (${STREAMS} tenants, one each) at once, in all (M)`, `${fmtRate(manyRate)} events/s`],
    ["   ratio M/S", (manyRate / S).toFixed(3)],
    [`3  lag at ${RATE} appends/s over ${STREAMS} streams, p50 / p99`, `${ms(pct(lags, 50))} / ${ms(pct(lags, 99))}`],
    ["   floor: one event appended, read, posted, p50 / p99", `${ms(pct(floorLags, 50))} / ${ms(pct(floorLags, 99))}`],
    ["   ratio p50 / floor p50", (pct(lags, 50) / pct(floorLags, 50)).toFixed(2)],
    [`4  appends/s, ${WRITERS} writers, ${STREAMS} streams active (A)`, `${fmtRate(best(active))} appends/s`],
    ["   the same, streams paused (N)", `${fmtRate(best(paused))} appends/s`],
    [
      "   ratio A/N",
      `${(best(active) / best(paused)).toFixed(3)}  (goal >= ${GOAL_APPEND_RATIO}: ${best(active) / best(paused) >= GOAL_APPEND_RATIO ? "PASS" : "BELOW GOAL"})`,
    ],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const line = `  +${"-".repeat(w0 + 2)}+${"-".repeat(w1 + 2)}+`;
  console.log(`\n  best of ${ROUNDS} where alternating (1, 4)\n${line}`);
  for (const [k, v] of rows) console.log(`  | ${k.padEnd(w0)} | ${v.padStart(w1)} |`);
  console.log(line);
}

try {
  await main();
  await cleanup();
  process.exit(0);
} catch (error) {
  await cleanup();
  if (interrupted) process.exit(130);
  console.error("bench:streams failed:", error);
  process.exit(1);
}
