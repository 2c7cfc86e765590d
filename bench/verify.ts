import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { JSONWebKeySet } from "jose";
import { writeExport } from "./auditExportFile.ts";
import { intEnv } from "./benchEnv.ts";
import { describeSpeed, timeVerifier } from "./verifierSpeed.ts";

const EVENTS = intEnv("BENCH_EVENTS", 300_000);
const ROUNDS = intEnv("BENCH_ROUNDS", 3);
const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const dir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-verify-"));
try {
  const file = process.env.BENCH_FILE ?? path.join(dir, "export.ndjson");
  const jwksFile = `${file}.jwks.json`;
  let keys: JSONWebKeySet;
  if (process.env.BENCH_FILE && existsSync(file) && existsSync(jwksFile)) {
    keys = JSON.parse(readFileSync(jwksFile, "utf8")) as JSONWebKeySet;
    console.log(`bench:verify  reusing ${file}`);
  } else {
    const t0 = performance.now();
    keys = await writeExport(file, EVENTS);
    writeFileSync(jwksFile, JSON.stringify(keys));
    console.log(`bench:verify  wrote ${fmt(EVENTS)} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log(`  ${file}: ${fmt(statSync(file).size / 1e6)} MB of NDJSON, ${ROUNDS} rounds`);
  const threads = process.env.BENCH_THREADS ? intEnv("BENCH_THREADS", 1) : undefined;
  const speed = await timeVerifier(file, keys, { rounds: ROUNDS, threads, log: (line) => console.log(`  ${line}`) });
  console.log(`\n  verifier, best of ${ROUNDS}: ${describeSpeed(speed)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
