/**
 * npm run bench:export
 *
 * The auditor's export of a 1,000,000-event tenant log, against baselines measured in the same run
 * on the same database:
 *   A  GET /audit/export (NDJSON) through the real HTTP route of a `keyplane serve` child process
 *      running the compiled output as the image does (npm run build, into node_modules/.cache):
 *      token check, audit.exported recorded, pages by primary key, lines built in SQL and copied out
 *      in binary COPY, backpressure, the signed end line; curl reads it into /dev/null;
 *   B  `COPY (SELECT * FROM events WHERE tenant_id = … ORDER BY tenant_seq) TO STDOUT` of the same
 *      rows through psql to /dev/null;
 *   C  (for reference) COPY of the same NDJSON lines built by the same SQL expression, no Node.
 * A/B is the figure (target >= 0.5). Also: the server's peak RSS (VmHWM, target <= 200 MB) and the
 * verifier's speed (events/s) on the exported file, which must verify, on one core and on all cores.
 *
 * The log is loaded quickly: tenant.created through the real write path, then the events in
 * batches of multi-row INSERTs with content and chain hashes computed by the same functions the
 * append uses (hashing.ts), so the chain is genuine and the verifier checks every hash of it.
 *
 * Environment: DATABASE_URL or TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test;
 * a scratch database is created on that server and dropped), BENCH_EVENTS (default 1000000),
 * BENCH_ROUNDS (default 2). Always exits 0 once measured (a benchmark, not a test).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { JSONWebKeySet } from "jose";
import pg from "pg";
import { createAuditSigner, type AuditSigner } from "../src/audit/auditSignatures.ts";
import { CHECKPOINT_JWS_TYPE, signatureOf } from "../src/audit/exportFormat.ts";
import { loadSigningKeys } from "../src/auth/signingKeys.ts";
import { issueAccessToken } from "../src/app/sessions/issueAccessToken.ts";
import { createTenant } from "../src/app/tenants.ts";
import { systemActor } from "../src/auth/actor.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { createKeyplane } from "../src/main.ts";
import { eventLinesSql } from "../src/store/audit/readExportPage.ts";
import { chainHash, contentHash } from "../src/audit/hashing.ts";
import { createBenchDatabase } from "./benchDatabase.ts";
import { auditWorkloadEvent } from "./auditWorkload.ts";
import { intEnv } from "./benchEnv.ts";
import { timeVerifier } from "./verifierSpeed.ts";

const EVENTS = intEnv("BENCH_EVENTS", 1_000_000);
const ROUNDS = intEnv("BENCH_ROUNDS", 2);
const BATCH = 5000;
const CHECKPOINT_EVERY = 1800; // an hour of events at one every 2 s
const RATIO_TARGET = 0.5;
const RSS_TARGET_MB = 200;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TENANT = "bench-export";

const serverUrl = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
// A database of its own on that server, dropped at the end.
const scratch = await createBenchDatabase("export", serverUrl);
const dbUrl = scratch.url;

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * The events after tenant.created, hashed as appendEvents hashes them, inserted in batches (2 in
 * flight), with a signed checkpoint every hour of events as the periodic job would have made them
 * (with the server's key), up to the last event: the server's job finds nothing to sign while it is
 * measured, and the exports carry ~550 checkpoints the verifier checks.
 */
async function loadLog(
  pool: pg.Pool,
  signer: AuditSigner,
  first: { seq: number; chain: string },
): Promise<{ lastSeq: number; lastChain: string; checkpoints: number }> {
  const started = Date.now() - EVENTS * 2_000; // one event every 2 s, ending now
  let chain = first.chain;
  let seq = first.seq;
  let previousSignature: string | null = null;
  const checkpoints: unknown[][] = [[], [], [], [], [], []];
  const inFlight = new Set<Promise<unknown>>();
  for (let done = 0; done < EVENTS; ) {
    const n = Math.min(BATCH, EVENTS - done);
    const cols: unknown[][] = Array.from({ length: 12 }, () => []);
    for (let i = 0; i < n; i++) {
      seq++;
      const k = done + i;
      const { streamType, streamId, type, occurredAt, data, metadata } = auditWorkloadEvent(k, started);
      const eventId = randomUUID();
      const content = contentHash({
        eventId,
        tenantId: TENANT,
        streamType,
        streamId,
        streamVersion: 1,
        type,
        schemaVersion: 1,
        data,
        metadata,
        occurredAt,
      });
      chain = chainHash(chain, seq, content);
      const row = [seq, streamType, streamId, eventId, type, JSON.stringify(data), JSON.stringify(metadata), occurredAt, content, chain];
      row.forEach((v, c) => cols[c]!.push(v));
      if ((k + 1) % CHECKPOINT_EVERY === 0 || k + 1 === EVENTS) {
        const payload = { tenantId: TENANT, sequence: seq, chainHash: chain, previousSignature, signedAt: occurredAt };
        const jws = await signer.sign(CHECKPOINT_JWS_TYPE, payload);
        [seq, chain, previousSignature, jws, signer.kid, occurredAt].forEach((v, c) => checkpoints[c]!.push(v));
        previousSignature = signatureOf(jws);
      }
    }
    const insert = pool
      .query(
        `insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, occurred_at, content_hash, chain_hash)
         select $1, s, st, sid, 1, eid::uuid, et, 1, d::jsonb, m::jsonb, o::timestamptz, ch, cc
         from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) as t(s, st, sid, eid, et, d, m, o, ch, cc)`,
        [TENANT, ...cols.slice(0, 10)],
      )
      .finally(() => inFlight.delete(insert));
    inFlight.add(insert);
    if (inFlight.size >= 2) await Promise.race(inFlight);
    done += n;
    if (done % 100_000 === 0 || done === EVENTS) process.stderr.write(`  loaded ${fmt(done)} events\r`);
  }
  await Promise.all(inFlight);
  await pool.query(
    `insert into audit_checkpoints (tenant_id, tenant_seq, chain_hash, previous_signature, jws, kid, signed_at)
     select $1, s, c, p, j, k, t::timestamptz from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) as x(s, c, p, j, k, t)`,
    [TENANT, ...checkpoints],
  );
  process.stderr.write("\n");
  return { lastSeq: seq, lastChain: chain, checkpoints: checkpoints[0]!.length };
}

/** The compiled server (tsc -p tsconfig.build.json), with the migrations beside it as in the image. */
function buildServer(): string {
  const out = path.join(ROOT, "node_modules/.cache/keyplane-bench");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  execFileSync(
    process.execPath,
    [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", path.join(out, "dist")],
    { stdio: "inherit" },
  );
  symlinkSync(path.join(ROOT, "migrations"), path.join(out, "migrations"));
  return path.join(out, "dist/cli/main.js");
}

function startServer(cli: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const launcher = `const { runCli } = await import(${JSON.stringify(pathToFileURL(cli).href)}); process.exitCode = await runCli(["serve"]);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", launcher], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /serving (http:\/\/\S+)\/graphql/.exec(err);
      if (m) resolve({ child, url: m[1]! });
    });
    child.once("exit", (code) => reject(new Error(`keyplane serve exited (${code}): ${err}`)));
  });
}

/** VmHWM (peak resident set) and VmRSS of a process, in MB. */
function memoryOf(pid: number): { peakMb: number; rssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { peakMb: kb("VmHWM") / 1024, rssMb: kb("VmRSS") / 1024 };
}

/** GET /audit/export, read to the end: bytes, seconds, and the body to a file when asked. */
function httpExport(url: string, token: string, query = "", file?: string): Promise<{ bytes: number; seconds: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sink = file ? createWriteStream(file) : undefined;
    const req = httpRequest(`${url}/audit/export${query}`, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`export answered ${res.statusCode}`));
      let bytes = 0;
      let tail: Buffer = Buffer.alloc(0);
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        tail = Buffer.from(chunk.length >= 4096 ? chunk.subarray(chunk.length - 4096) : Buffer.concat([tail, chunk]).subarray(-4096));
        if (sink && !sink.write(chunk)) {
          res.pause();
          sink.once("drain", () => res.resume());
        }
      });
      res.on("end", () => {
        const done = () => resolve({ bytes, seconds: (performance.now() - t0) / 1000, tail: tail.toString("utf8") });
        if (sink) sink.end(done);
        else done();
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * The timed export read by curl into /dev/null, as psql reads B's COPY: a client in C on both
 * sides, so the client's own cost (which shares the machine) is alike. curl fails on a chunked body
 * cut short, so exit 0 with 200 is the whole file (the verifier checks a copy of it below).
 */
function curlExport(url: string, token: string): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // The token goes through the environment, not the command line (other users see arguments).
    const child = spawn("sh", ["-c", 'curl -sS -f -o /dev/null -w "%{http_code} %{size_download}" -H "authorization: Bearer $KP_TOKEN" "$KP_URL"'], {
      env: { PATH: process.env.PATH ?? "", KP_TOKEN: token, KP_URL: `${url}/audit/export` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const [status, bytes] = out.trim().split(" ");
      if (code !== 0 || status !== "200") return reject(new Error(`curl export failed (exit ${code}, HTTP ${status}): ${err}`));
      resolve({ bytes: Number(bytes), seconds });
    });
  });
}

/** psql COPY … TO STDOUT into /dev/null: seconds. */
function psqlCopy(query: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", dbUrl, "-c", `COPY (${query}) TO STDOUT`], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`psql exited ${code}: ${err}`))));
  });
}

async function main() {
  const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-export-"));
  const signingKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const env: Record<string, string> = {
    NODE_ENV: "production",
    LOG_LEVEL: "warn",
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: dbUrl,
    KEYPLANE_MIGRATE_ON_START: "true",
    KEYPLANE_DATA_DIR: dataDir,
    KEYPLANE_SIGNING_KEY: signingKey,
    KEYPLANE_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString("base64")}`,
    RATE_LIMITS: "off",
  };
  let server: ChildProcess | undefined;
  try {
    // Schema, tenant (its first event through the real write path), token.
    const kp = await createKeyplane(loadConfig(env), { logger: createLogger({ level: "warn" }) });
    let token: string;
    try {
      const created = await createTenant(kp.deps, systemActor("bench:export"), { id: TENANT, name: "Export bench", tier: "enterprise" });
      // Row-level security: the loader declares itself platform-wide (a superuser would bypass it anyway).
      const pool = new pg.Pool({ connectionString: dbUrl, max: 3, options: "-c keyplane.platform=on" });
      const { rows: info } = await pool.query<{ version: string }>("select current_setting('server_version') as version");
      console.log(`bench:export  PostgreSQL ${info[0]!.version}, database ${new URL(dbUrl).pathname.slice(1)}, ${fmt(EVENTS)} events, ${ROUNDS} rounds\n`);
      const loadStart = performance.now();
      // Rows of the tenant appended later than the token below would be exported too: the token first.
      const issued = await issueAccessToken(kp.deps, systemActor("bench:export"), {
        tenantId: TENANT,
        subject: "auditor",
        kind: "user",
        roles: ["viewer"],
        scopes: ["audit:read"],
        ttlSeconds: 86_400,
        issuedVia: "cli",
      });
      token = issued.accessToken;
      const { rows: head } = await pool.query<{ last_seq: string; last_chain_hash: string }>(
        "select last_seq, last_chain_hash from tenant_heads where tenant_id = $1",
        [TENANT],
      );
      const keys = await loadSigningKeys({ pem: signingKey, dataDir, allowGenerate: false });
      const last = await loadLog(pool, createAuditSigner(keys.current), { seq: Number(head[0]!.last_seq), chain: head[0]!.last_chain_hash });
      await pool.query("update tenant_heads set last_seq = $2, last_chain_hash = $3 where tenant_id = $1", [TENANT, last.lastSeq, last.lastChain]);
      await pool.query("vacuum analyze events");
      console.log(
        `  loaded in ${((performance.now() - loadStart) / 1000).toFixed(1)} s (tenant.created at sequence ${created.sequence}, head now ${fmt(last.lastSeq)}, ${last.checkpoints} signed checkpoints)`,
      );
      await pool.end();
    } finally {
      await kp.close();
    }

    const buildStart = performance.now();
    const cli = buildServer();
    console.log(`  compiled the server in ${((performance.now() - buildStart) / 1000).toFixed(1)} s`);
    const started = await startServer(cli, env);
    server = started.child;
    const url = started.url;
    const rowsQuery = `select * from events where tenant_id = '${TENANT}' order by tenant_seq`;
    const linesQuery = eventLinesSql("ndjson", TENANT);
    // Warm-up: plans, connections, the buffer cache.
    await httpExport(url, token, "?toSequence=20000");
    await psqlCopy(rowsQuery);
    const idle = memoryOf(server.pid!);

    const results = { A: [] as number[], B: [] as number[], C: [] as number[], bytes: 0 };
    const rows = EVENTS + 2;
    for (let round = 1; round <= ROUNDS; round++) {
      const a = await curlExport(url, token);
      results.bytes = a.bytes;
      const b = await psqlCopy(rowsQuery);
      const c = await psqlCopy(linesQuery);
      results.A.push(rows / a.seconds);
      results.B.push(rows / b);
      results.C.push(rows / c);
      console.log(
        `  round ${round}: A ${fmt(rows / a.seconds)} events/s (${a.seconds.toFixed(2)} s, ${fmt(a.bytes / 1e6)} MB)   B ${fmt(rows / b)} rows/s (${b.toFixed(2)} s)   C ${fmt(rows / c)} lines/s (${c.toFixed(2)} s)`,
      );
    }
    const memory = memoryOf(server.pid!);

    // The verifier on a file of the same export, as `keyplane audit verify` runs it: on one core, and
    // with its default threads (every line checked by whichever thread is free, the chain followed on
    // the main thread).
    const file = path.join(dataDir, "export.ndjson");
    await httpExport(url, token, "", file);
    const jwks = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const verifier = await timeVerifier(file, jwks, { rounds: ROUNDS, log: (line) => console.log(`  verify ${line}`) });

    const bestA = Math.max(...results.A);
    const bestB = Math.max(...results.B);
    const bestC = Math.max(...results.C);
    const ratio = bestA / bestB;
    const table: [string, string][] = [
      ["A GET /audit/export, NDJSON over HTTP", `${fmt(bestA)} events/s  (${fmt((bestA * results.bytes) / rows / 1e6, 1)} MB/s)`],
      ["B COPY (SELECT * …) TO STDOUT, same rows", `${fmt(bestB)} rows/s`],
      ["ratio A/B", `${ratio.toFixed(3)}  target >= ${RATIO_TARGET}: ${ratio >= RATIO_TARGET ? "PASS" : "BELOW TARGET"}`],
      ["C COPY of the same NDJSON lines (reference)", `${fmt(bestC)} lines/s  (A/C ${(bestA / bestC).toFixed(3)})`],
      ["server peak RSS (VmHWM)", `${fmt(memory.peakMb, 1)} MB  target <= ${RSS_TARGET_MB}: ${memory.peakMb <= RSS_TARGET_MB ? "PASS" : "ABOVE TARGET"}`],
      ["server RSS before the timed exports (after warm-up)", `${fmt(idle.rssMb, 1)} MB  (the exports added ${fmt(memory.peakMb - idle.rssMb, 1)} MB at most)`],
      ["verifier on one core (file, every hash and signature)", `${fmt(verifier.oneCore)} events/s  (${verifier.checkpoints} checkpoints, ok)`],
      [`verifier on all cores (${verifier.threads} threads)`, `${fmt(verifier.allCores)} events/s`],
    ];
    const w0 = Math.max(...table.map((r) => r[0].length));
    const w1 = Math.max(...table.map((r) => r[1].length));
    const line = `  +${"-".repeat(w0 + 2)}+${"-".repeat(w1 + 2)}+`;
    console.log(`\n  best of ${ROUNDS} rounds, ${fmt(rows)} events (${fmt(results.bytes / 1e6)} MB of NDJSON)\n${line}`);
    for (const [k, v] of table) console.log(`  | ${k.padEnd(w0)} | ${v.padEnd(w1)} |`);
    console.log(line);
  } finally {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once("exit", r));
      server.kill("SIGTERM");
      await exited;
    }
    await scratch.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error("bench:export failed:", error);
    process.exit(1);
  },
);
