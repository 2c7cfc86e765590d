import { createPublicKey, generateKeyPairSync, type KeyObject, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
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

// The audit benchmarks' export file (bench:verify, bench:console): written as the server writes one,
// line for line, without a database.

const CHECKPOINT_EVERY = 1800;
export const AUDIT_BENCH_TENANT = "bench-export";
const TENANT = AUDIT_BENCH_TENANT;

/** JSON as PostgreSQL prints a jsonb value: keys by length then bytes, ", " and ": " between items. */
function jsonbText(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(jsonbText).join(", ") + "]";
  const keys = Object.keys(value).sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  return "{" + keys.map((k) => `${JSON.stringify(k)}: ${jsonbText((value as Record<string, unknown>)[k])}`).join(", ") + "}";
}

/**
 * An export file of `EVENTS` events as the server writes it (NDJSON), signed with `privateKey` (a new
 * P-256 key by default): the JWKS to verify it with.
 */
export async function writeExport(
  file: string,
  EVENTS: number,
  privateKey: KeyObject = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey,
): Promise<JSONWebKeySet> {
  const publicKey = createPublicKey(privateKey);
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
