/**
 * npm run bench:verify
 *
 * `keyplane audit verify`'s speed without a database: an export file of BENCH_EVENTS events (default
 * 300,000) written as the server writes one (the same line layout, data and metadata as jsonb prints
 * them, a signed checkpoint every 1,800 events, the signed end line), then verified BENCH_ROUNDS times
 * (default 3) on one core and with the default threads (the cores, at most 8). Prints events/s, best
 * of the rounds. bench:export measures the same on a file exported by the server.
 *
 * The events are those of bench:export (access tokens issued, one access denied in ten).
 *
 * Environment: BENCH_EVENTS, BENCH_ROUNDS, BENCH_THREADS (threads besides one core; default the
 * verifier's), BENCH_FILE (write the file there once and reuse it, with its JWKS beside it).
 */
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { finished } from "node:stream/promises";
import { calculateJwkThumbprint, exportJWK, type JSONWebKeySet } from "jose";
import { createAuditSigner } from "../src/audit/auditSignatures.ts";
import {
  CHECKPOINT_JWS_TYPE,
  deriveAuditFields,
  EXPORT_FORMAT,
  EXPORT_JWS_TYPE,
  EXPORT_VERSION,
  signatureOf,
  type ExportSummary,
  type HeaderRecord,
} from "../src/audit/exportFormat.ts";
import { chainHash, contentHash, genesisHash } from "../src/audit/hashing.ts";
import { auditWorkloadEvent } from "./auditWorkload.ts";
import { intEnv } from "./benchEnv.ts";
import { describeSpeed, timeVerifier } from "./verifierSpeed.ts";

const EVENTS = intEnv("BENCH_EVENTS", 300_000);
const ROUNDS = intEnv("BENCH_ROUNDS", 3);
const CHECKPOINT_EVERY = 1800;
const TENANT = "bench-export";
const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** JSON as PostgreSQL prints a jsonb value: keys by length then bytes, ", " and ": " between items. */
function jsonbText(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(jsonbText).join(", ") + "]";
  const keys = Object.keys(value).sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  return "{" + keys.map((k) => `${JSON.stringify(k)}: ${jsonbText((value as Record<string, unknown>)[k])}`).join(", ") + "}";
}

/** An export file as the server writes it (NDJSON): the JWKS to verify it with. */
async function writeExport(file: string): Promise<JSONWebKeySet> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const signer = createAuditSigner({ kid, privateKey });
  const out = createWriteStream(file);
  let buffered: string[] = [];
  const write = async (line: string) => {
    buffered.push(line);
    if (buffered.length >= 1000) {
      if (!out.write(buffered.join("\n") + "\n")) await new Promise<void>((r) => out.once("drain", () => r()));
      buffered = [];
    }
  };
  const anchor = { type: "genesis" as const, sequence: 0 as const, chainHash: genesisHash(TENANT) };
  const header: HeaderRecord = {
    kind: "header",
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportId: randomUUID(),
    tenantId: TENANT,
    exportedAt: new Date().toISOString(),
    fromSequence: 1,
    toSequence: EVENTS,
    filter: { from: null, to: null, types: null },
    anchor,
    recordedAs: { sequence: EVENTS + 1 },
  };
  await write(JSON.stringify(header));
  const started = Date.now() - EVENTS * 2_000;
  let chain = anchor.chainHash;
  let previousSignature: string | null = null;
  let checkpoints = 0;
  let lastCheckpoint: ExportSummary["lastCheckpoint"] = null;
  for (let k = 0; k < EVENTS; k++) {
    const seq = k + 1;
    const { streamType, streamId, type, occurredAt, data, metadata } = auditWorkloadEvent(k, started);
    const e = { eventId: randomUUID(), tenantId: TENANT, streamType, streamId, streamVersion: 1, type, schemaVersion: 1, data, metadata, occurredAt };
    const content = contentHash(e);
    chain = chainHash(chain, seq, content);
    const audit = deriveAuditFields(e);
    // The line as readExportPage.ts builds it in SQL: its key order, jsonb's text for data and metadata.
    await write(
      `{"kind":"event","sequence":${seq},"eventId":"${e.eventId}","tenantId":"${TENANT}","streamType":"${streamType}","streamId":${JSON.stringify(streamId)},"streamVersion":1,"type":"${type}","schemaVersion":1,` +
        `"occurredAt":"${occurredAt}","data":${jsonbText(data)},"metadata":${jsonbText(metadata)},"contentHash":"${content}","chainHash":"${chain}",` +
        `"audit":{${Object.entries(audit)
          .map(([key, v]) => `"${key}":${jsonbText(v)}`)
          .join(",")}}}`,
    );
    if (seq % CHECKPOINT_EVERY === 0 || seq === EVENTS) {
      const payload = { tenantId: TENANT, sequence: seq, chainHash: chain, previousSignature, signedAt: occurredAt };
      const jws = await signer.sign(CHECKPOINT_JWS_TYPE, payload);
      await write(JSON.stringify({ kind: "checkpoint", sequence: seq, chainHash: chain, previousSignature, signedAt: occurredAt, kid, jws }));
      previousSignature = signatureOf(jws);
      lastCheckpoint = { sequence: seq, signature: previousSignature };
      checkpoints++;
    }
  }
  const { kind: _kind, ...rest } = header;
  const summary: ExportSummary = { ...rest, anchor, events: EVENTS, omitted: 0, checkpoints, lastCheckpoint, lastSequence: EVENTS, lastChainHash: chain };
  await write(JSON.stringify({ kind: "end", ...summary, jws: await signer.sign(EXPORT_JWS_TYPE, summary) }));
  out.end(buffered.join("\n") + "\n");
  await finished(out);
  return { keys: [{ ...jwk, kid, alg: "ES256", use: "sig" }] };
}

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
    keys = await writeExport(file);
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
