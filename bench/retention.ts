/**
 * npm run bench:retention
 *
 * Retention (issue 21): pruning a large tenant's old log while other tenants keep appending, against
 * the same appends without a prune, measured in the same run:
 *   load  One tenant (tier free, retention set to 30 days with SetRetentionPolicy) with BENCH_EVENTS
 *        events (default 1,000,000) appended through appendEvents, occurred 60 days ago, in appends of
 *        BENCH_LOAD_BATCH access.denied events (a new security stream each), with a checkpoint signed
 *        (signCheckpoint, the chain since the previous one verified first) every BENCH_CHECKPOINT_EVERY
 *        events (20,000) and at the end. With BENCH_ARCHIVE=both (the default) two such tenants: one
 *        pruned without an archive, one with AUDIT_ARCHIVE_DIR set (a temporary directory).
 *   N    Baseline: BENCH_WRITERS writers (8) appending one access_token.issued each (an inline
 *        projection, as bench:append) over BENCH_TENANTS other tenants (4), letting the event loop turn
 *        after each append as a server's requests do, for BENCH_SECONDS (20): appends/s, latency.
 *   P    pruneTenantLog on the loaded tenant (its read tables snapshotted, then steps of at most
 *        AUDIT_PRUNE_BATCH_EVENTS from checkpoint to checkpoint: the archive when set, the streams'
 *        snapshots, keyplane_prune_prefix, audit.pruned) while the same writers append: the prune's
 *        time, events pruned per second, and the writers' appends/s during it (D).
 *   D/N  against the mean of the baselines measured just before and just after the prune; goal >= 0.8.
 * Then the proof it did the work: the tenant's log starts at its last checkpoint + 1 and holds only the
 * audit.pruned events after it, verifyAuditLog is clean (anchored on that checkpoint, signatures
 * checked against the JWKS), the other tenants' logs verify, and every archive file has the digest its
 * audit.pruned event names and verifies as an export (verifyExportFile, one thread).
 * The order: N, P without archive, N, P with archive, N (BENCH_ARCHIVE=off or on: N, P, N).
 *
 * Embedded PGlite unless BENCH_DATABASE_URL or DATABASE_URL names a PostgreSQL server: then a database
 * of the bench's own there, dropped at the end. The Keyplane is created, never listened with: its
 * periodic jobs (checkpoints, retention) do not run. Always exits 0 once measured (a benchmark, not a
 * test); 1 when a check after the prune fails.
 *
 * Environment: BENCH_DATABASE_URL / DATABASE_URL, BENCH_EVENTS (1000000), BENCH_CHECKPOINT_EVERY
 * (20000), BENCH_LOAD_BATCH (1000), BENCH_ARCHIVE (both | off | on), BENCH_ARCHIVE_DIR (where the
 * temporary archive directory goes; the system's temporary directory), BENCH_WRITERS (8),
 * BENCH_TENANTS (4), BENCH_SECONDS (20), AUDIT_PRUNE_BATCH_EVENTS (the server's default, 20000).
 */
import { createHash, generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import { signCheckpoint } from "../src/app/audit/signCheckpoint.ts";
import { verifyAuditLog } from "../src/app/audit/verifyAuditLog.ts";
import { pruneTenantLog, type PruneStep, type RetentionDeps } from "../src/app/retention/pruneTenantLog.ts";
import { createTenant, setRetentionPolicy } from "../src/app/tenants.ts";
import { verifyExportFile } from "../src/audit/node/verifyExportFile.ts";
import { eventMetadata, systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { AccessDenied } from "../src/domain/security/events.ts";
import { AccessTokenIssued } from "../src/domain/session/events.ts";
import { createLogger } from "../src/logger.ts";
import { createKeyplane, type Keyplane } from "../src/main.ts";
import { withPlatform, withTenant } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { createBenchDatabase, type BenchDatabase } from "./benchDatabase.ts";
import { intEnv } from "./benchEnv.ts";

const EVENTS = intEnv("BENCH_EVENTS", 1_000_000);
const CHECKPOINT_EVERY = intEnv("BENCH_CHECKPOINT_EVERY", 20_000);
const LOAD_BATCH = intEnv("BENCH_LOAD_BATCH", 1_000);
const WRITERS = intEnv("BENCH_WRITERS", 8);
const TENANTS = intEnv("BENCH_TENANTS", 4);
const SECONDS = intEnv("BENCH_SECONDS", 20);
const ARCHIVE = process.env.BENCH_ARCHIVE || "both";
if (!["both", "off", "on"].includes(ARCHIVE)) {
  console.error(`BENCH_ARCHIVE must be both, off or on (got ${JSON.stringify(ARCHIVE)})`);
  process.exit(2);
}
const RETENTION_DAYS = 30;
const AGE_DAYS = 60;
const GOAL = 0.8;
/** The writers run this long before a prune's clock starts. */
const WARM_MS = 1_000;

const serverUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL;

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (values: number[], p: number) => {
  if (!values.length) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const maxOf = (values: number[]) => (values.length ? values.reduce((a, b) => Math.max(a, b)) : Number.NaN);

let interrupted: NodeJS.Signals | undefined;
const checkInterrupt = () => {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
};

// ---- the run's resources, all closed or removed by cleanup ----

const scratch: BenchDatabase | undefined = serverUrl ? await createBenchDatabase("retention", serverUrl) : undefined;
const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-retention-"));
const archiveDir = ARCHIVE === "off" ? undefined : mkdtempSync(path.join(process.env.BENCH_ARCHIVE_DIR || tmpdir(), "keyplane-bench-archive-"));
let kp: Keyplane | undefined;

let cleaned: Promise<void> | undefined;
const cleanup = () =>
  (cleaned ??= (async () => {
    await kp?.close().catch((error) => console.error("closing Keyplane failed:", error));
    await scratch?.drop();
    rmSync(dataDir, { recursive: true, force: true });
    if (archiveDir) rmSync(archiveDir, { recursive: true, force: true });
  })());
const onSignal = (signal: NodeJS.Signals) => {
  interrupted = signal;
  console.error(`\n${signal}: stopping, then removing what the bench made`);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

// ---- the other tenants' appends ----

interface LoadWindow {
  appends: number;
  seconds: number;
  /** From a writer being ready for its next append (before its turn of the event loop) to the append's return, ms. */
  latencies: number[];
  /** The longest the event loop went without turning in the window (a 5 ms ticker's longest gap), ms. */
  loopMaxMs: number;
}

interface Load {
  /** Where a window starts: the appends done so far; the event loop's longest stall counts from here. */
  mark(): { appends: number; at: number; latencyIndex: number };
  /** The appends since the mark, and the longest stall (read after a short sleep, so a stall just ended is counted). */
  window(since: ReturnType<Load["mark"]>): Promise<LoadWindow>;
  /** Stops the writers once their appends in flight returned; the window's latencies then include those. */
  stop(window?: { since: ReturnType<Load["mark"]>; window: LoadWindow }): Promise<void>;
}

function startLoad(db: Keyplane["deps"]["db"], tenantIds: string[]): Load {
  const metadata = eventMetadata(systemActor("bench:retention"), { requestId: "bench-retention" });
  let stopped = false;
  let appends = 0;
  const latencies: number[] = [];
  let next = 0;
  const writers = Array.from({ length: WRITERS }, async () => {
    while (!stopped && !interrupted) {
      const i = next++;
      const started = performance.now();
      // A server's requests arrive through the event loop: each append waits for its turn (the embedded
      // database answers without I/O, and the writers' promises alone would keep everything else from
      // running; a prune that never lets the loop turn holds them all, as it would hold requests).
      await new Promise((resolve) => setImmediate(resolve));
      await appendEvents(db, {
        tenantId: tenantIds[i % tenantIds.length]!,
        streamType: "access_token",
        streamId: randomUUID(),
        expectedVersion: 0,
        events: [
          AccessTokenIssued({
            tokenId: randomUUID(),
            subject: "svc:bench",
            kind: "service",
            roles: ["service"],
            scopes: ["credentials:read"],
            expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
            issuedVia: "api",
          }),
        ],
        metadata,
        occurredAt: new Date(),
      });
      latencies.push(performance.now() - started);
      appends++;
    }
  });
  const all = Promise.all(writers);
  all.catch(() => {}); // a failed append surfaces in stop()
  // The event loop's stalls: a ticker's longest gap between two turns (a stall that began before a mark
  // counts from the mark).
  let lastTick = performance.now();
  let longestGap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - lastTick);
    lastTick = now;
  }, 5);
  return {
    mark: () => {
      lastTick = performance.now();
      longestGap = 0;
      return { appends, at: lastTick, latencyIndex: latencies.length };
    },
    async window(since) {
      const w = { appends: appends - since.appends, seconds: (performance.now() - since.at) / 1000, latencies: latencies.slice(since.latencyIndex) };
      await sleep(25);
      return { ...w, loopMaxMs: longestGap };
    },
    async stop(w) {
      stopped = true;
      await all;
      clearInterval(ticker);
      if (w) w.window.latencies = latencies.slice(w.since.latencyIndex);
    },
  };
}

async function main(): Promise<boolean> {
  const env = {
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    KEYPLANE_DATA_DIR: dataDir,
    RATE_LIMITS: "off",
    ...(process.env.AUDIT_PRUNE_BATCH_EVENTS ? { AUDIT_PRUNE_BATCH_EVENTS: process.env.AUDIT_PRUNE_BATCH_EVENTS } : {}),
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
  const deps = kp.deps;
  const db = deps.db;
  const database = kp.database;
  const jwks = deps.verifier.jwks;
  const system = systemActor("bench:retention");

  let backend = "embedded PGlite";
  if (scratch) {
    const { rows } = await sql<{
      v: string;
      sync: string;
    }>`select current_setting('server_version') as v, current_setting('synchronous_commit') as sync`.execute(db);
    backend = `PostgreSQL ${rows[0]?.v ?? ""} (synchronous_commit=${rows[0]?.sync}), database ${new URL(scratch.url).pathname.slice(1)}`;
  }
  console.log(`bench:retention on ${backend}`);
  console.log(
    `  ${fmt(EVENTS)} events per pruned tenant, a checkpoint every ${fmt(CHECKPOINT_EVERY)}, prune steps of at most ${fmt(config.audit.pruneBatchEvents)}; ` +
      `${WRITERS} writers over ${TENANTS} other tenants, baselines of ${SECONDS} s; archive: ${ARCHIVE}`,
  );

  // ======== load ========
  const runs: Array<{ tenantId: string; archive: boolean }> = [];
  if (ARCHIVE !== "on") runs.push({ tenantId: "bench-pruned", archive: false });
  if (ARCHIVE !== "off") runs.push({ tenantId: "bench-pruned-archived", archive: true });

  const occurredAt = new Date(Date.now() - AGE_DAYS * 86_400_000);
  const loadMetadata = eventMetadata(systemActor("bench:retention"));
  /** The tenant's last checkpoint's sequence once loaded. */
  const lastCheckpoint = new Map<string, number>();
  for (const { tenantId } of runs) {
    await createTenant(deps, system, { id: tenantId, name: tenantId, tier: "free" });
    await setRetentionPolicy(deps, systemActor("bench:retention", tenantId), tenantId, { days: RETENTION_DAYS });
    const t = performance.now();
    let signing = 0;
    let checkpoints = 0;
    let sinceCheckpoint = 0;
    const sign = async () => {
      const s = performance.now();
      const outcome = await signCheckpoint({ ...deps, jwks }, tenantId);
      if (outcome.outcome !== "signed") throw new Error(`no checkpoint signed for ${tenantId}: ${JSON.stringify(outcome)}`);
      lastCheckpoint.set(tenantId, outcome.checkpoint.sequence);
      signing += performance.now() - s;
      checkpoints++;
      sinceCheckpoint = 0;
    };
    for (let done = 0; done < EVENTS; ) {
      checkInterrupt();
      const n = Math.min(LOAD_BATCH, EVENTS - done, CHECKPOINT_EVERY - sinceCheckpoint);
      await withTenant(db, tenantId, (trx) =>
        appendEvents(trx, {
          tenantId,
          streamType: "security",
          streamId: randomUUID(),
          expectedVersion: 0,
          events: Array.from({ length: n }, (_, i) =>
            AccessDenied({
              level: "warning",
              status: "denied",
              reason: "bench-retention",
              resource: "graphql",
              action: "agent:write",
              details: { n: done + i },
            }),
          ),
          metadata: loadMetadata,
          occurredAt,
        }),
      );
      done += n;
      sinceCheckpoint += n;
      if (sinceCheckpoint >= CHECKPOINT_EVERY || done === EVENTS) await sign();
      if (done % 100_000 < n || done === EVENTS) process.stderr.write(`  ${tenantId}: loaded ${fmt(done)} events\r`);
    }
    const seconds = (performance.now() - t) / 1000;
    process.stderr.write("\n");
    console.log(
      `  loaded ${tenantId}: ${fmt(EVENTS)} events in ${seconds.toFixed(1)} s (${fmt(EVENTS / seconds)} events/s; ${checkpoints} checkpoints signed in ${(signing / 1000).toFixed(1)} s of it), last checkpoint at ${fmt(lastCheckpoint.get(tenantId)!)}`,
    );
  }

  // ======== the other tenants ========
  const others = Array.from({ length: TENANTS }, (_, i) => `bench-other-${i}`);
  for (const id of others) await createTenant(deps, system, { id, name: id, tier: "enterprise" });
  {
    // Warm-up: every path the writers take, compiled and cached.
    const warm = startLoad(db, others);
    await sleep(WARM_MS);
    await warm.stop();
  }

  const baselines: LoadWindow[] = [];
  const baseline = async (label: string) => {
    const load = startLoad(db, others);
    await sleep(WARM_MS);
    const since = load.mark();
    for (const end = performance.now() + SECONDS * 1000; performance.now() < end; ) {
      checkInterrupt();
      await sleep(100);
    }
    const w = await load.window(since);
    await load.stop({ since, window: w });
    baselines.push(w);
    console.log(
      `  N ${label}: ${fmt(w.appends / w.seconds)} appends/s (${fmt(w.appends)} in ${w.seconds.toFixed(1)} s), latency p50 ${pct(w.latencies, 50).toFixed(1)} p99 ${pct(w.latencies, 99).toFixed(1)} max ${maxOf(w.latencies).toFixed(1)} ms; longest event loop stall ${w.loopMaxMs.toFixed(0)} ms`,
    );
    return w;
  };

  interface PruneRun {
    tenantId: string;
    archive: boolean;
    seconds: number;
    steps: PruneStep[];
    during: LoadWindow;
    before: LoadWindow;
    after?: LoadWindow;
  }
  const results: PruneRun[] = [];

  let before = await baseline("before");
  for (const { tenantId, archive } of runs) {
    const pruneDeps: RetentionDeps = archive ? { ...deps, config: { ...config, audit: { ...config.audit, archiveDir: archiveDir! } } } : deps;
    const load = startLoad(db, others);
    await sleep(WARM_MS);
    const since = load.mark();
    const outcome = await pruneTenantLog(pruneDeps, tenantId, { owner: "bench:retention", database });
    const during = await load.window(since);
    await load.stop({ since, window: during });
    if (outcome.outcome !== "pruned") throw new Error(`the prune of ${tenantId} answered ${JSON.stringify(outcome)}`);
    const pruned = outcome.steps.reduce((sum, s) => sum + s.events, 0);
    const run: PruneRun = { tenantId, archive, seconds: during.seconds, steps: outcome.steps, during, before };
    results.push(run);
    console.log(
      `  P ${archive ? "with archive" : "without archive"}: ${fmt(pruned)} events in ${outcome.steps.length} steps, ${during.seconds.toFixed(2)} s (${fmt(pruned / during.seconds)} events/s); meanwhile ${fmt(during.appends / during.seconds)} appends/s, latency p50 ${pct(during.latencies, 50).toFixed(1)} p99 ${pct(during.latencies, 99).toFixed(1)} max ${maxOf(during.latencies).toFixed(1)} ms; longest event loop stall ${during.loopMaxMs.toFixed(0)} ms`,
    );
    run.after = await baseline("after");
    before = run.after;
  }

  // ======== the proof ========
  let failed = false;
  const check = (ok: boolean, what: string) => {
    console.log(`  ${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) failed = true;
  };
  console.log("");
  for (const run of results) {
    const { tenantId } = run;
    const anchor = lastCheckpoint.get(tenantId)!;
    const facts = await withTenant(db, tenantId, async (trx) => {
      // Left: the steps' audit.pruned events, and with archives the audit.exported event each archive recorded.
      const { rows } = await sql<{ first: number | null; pruned: number; archives: number; other: number }>`
        select min(tenant_seq)::int as first,
               count(*) filter (where event_type = 'audit.pruned')::int as pruned,
               count(*) filter (where event_type = 'audit.exported' and data->>'via' = 'archive')::int as archives,
               count(*) filter (where event_type <> 'audit.pruned' and not (event_type = 'audit.exported' and data->>'via' = 'archive'))::int as other
          from events where tenant_id = ${tenantId}`.execute(trx);
      const head = await trx.selectFrom("tenant_heads").select("last_seq").where("tenant_id", "=", tenantId).executeTakeFirst();
      return { ...rows[0]!, head: Number(head?.last_seq ?? 0) };
    });
    const prunedEvents = run.steps.reduce((sum, s) => sum + s.events, 0);
    check(
      prunedEvents === anchor && run.steps[0]?.fromSequence === 1 && run.steps.at(-1)?.toSequence === anchor,
      `${tenantId}: pruned 1..${fmt(anchor)} (${fmt(prunedEvents)} events in ${run.steps.length} steps), up to its last checkpoint`,
    );
    const archives = run.archive ? run.steps.length : 0;
    check(
      Number(facts.first) === anchor + 1 &&
        facts.head === anchor + run.steps.length + archives &&
        facts.pruned === run.steps.length &&
        facts.archives === archives &&
        facts.other === 0,
      `${tenantId}: the log starts at ${fmt(Number(facts.first))} = last checkpoint + 1 and holds only its ${facts.pruned} audit.pruned events${run.archive ? ` and ${facts.archives} audit.exported (archive)` : ""} (head ${fmt(facts.head)})`,
    );
    const report = await verifyAuditLog({ db, jwks }, tenantId);
    check(
      report.ok && report.problem === null && report.startsFrom === "checkpoint" && report.anchorSequence === anchor && report.signatures === "verified",
      `${tenantId}: verifyAuditLog clean from checkpoint ${fmt(report.anchorSequence ?? 0)}, ${report.events} events, signatures ${report.signatures}${report.problem ? `: ${JSON.stringify(report.problem)}` : ""}`,
    );
    if (run.archive) {
      let archived = 0;
      let bytes = 0;
      let ok = true;
      const t = performance.now();
      for (const step of run.steps) {
        if (!step.archive) {
          ok = false;
          continue;
        }
        const file = path.join(archiveDir!, step.archive.file);
        bytes += statSync(file).size;
        if (createHash("sha256").update(readFileSync(file)).digest("hex") !== step.archive.sha256) ok = false;
        const verified = await verifyExportFile(await open(file), { keys: jwks, threads: 1 });
        if (!verified.ok || verified.anchorSequence !== step.fromSequence - 1) ok = false;
        archived += verified.events;
      }
      check(
        ok && archived === prunedEvents,
        `${tenantId}: ${run.steps.length} archive files (${fmt(bytes / 1e6, 1)} MB) match their digests and verify, ${fmt(archived)} events (checked in ${((performance.now() - t) / 1000).toFixed(1)} s)`,
      );
    }
  }
  const otherReports = await Promise.all(others.map((id) => verifyAuditLog({ db, jwks }, id)));
  check(
    otherReports.every((r) => r.ok),
    `the other tenants' logs verify (${fmt(otherReports.reduce((sum, r) => sum + r.events, 0))} events)`,
  );
  const leases = await withPlatform(db, (trx) => trx.selectFrom("retention_leases").select("tenant_id").execute());
  check(leases.length === 0, "no retention lease left held");

  // ======== the table ========
  const rate = (w: LoadWindow) => w.appends / w.seconds;
  const rows: string[][] = [
    ["run", "events pruned", "steps", "prune s", "pruned events/s", "N appends/s", "D appends/s", "D/N", "D p99 / N p99 ms", "loop max D / N ms"],
  ];
  for (const run of results) {
    const n = (rate(run.before) + rate(run.after!)) / 2;
    const d = rate(run.during);
    const nP99 = (pct(run.before.latencies, 99) + pct(run.after!.latencies, 99)) / 2;
    const pruned = run.steps.reduce((sum, s) => sum + s.events, 0);
    rows.push([
      run.archive ? "P with archive" : "P without archive",
      fmt(pruned),
      String(run.steps.length),
      run.seconds.toFixed(2),
      fmt(pruned / run.seconds),
      fmt(n),
      fmt(d),
      `${(d / n).toFixed(2)} ${d / n >= GOAL ? "PASS" : "BELOW"}`,
      `${pct(run.during.latencies, 99).toFixed(1)} / ${nP99.toFixed(1)}`,
      `${run.during.loopMaxMs.toFixed(0)} / ${Math.max(run.before.loopMaxMs, run.after!.loopMaxMs).toFixed(0)}`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = `  +${widths.map((w) => "-".repeat(w + 2)).join("+")}+`;
  console.log(`\n  ${backend}; N: the mean of the baselines just before and after each prune; goal D/N >= ${GOAL}\n${line}`);
  for (const [i, r] of rows.entries()) {
    console.log(`  | ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ")} |`);
    if (i === 0) console.log(line);
  }
  console.log(line);
  if (failed) console.error("\n  a check after the prune FAILED: the figures above are not to be trusted");
  return !failed;
}

try {
  const ok = await main();
  await cleanup();
  process.exit(ok ? 0 : 1);
} catch (error) {
  await cleanup();
  if (interrupted) process.exit(130);
  console.error("bench:retention failed:", error);
  process.exit(1);
}
