import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { calculateJwkThumbprint, exportJWK, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuditSigner, type AuditSigner } from "../../src/audit/auditSignatures.ts";
import { CheckedEvent, checkedRecordOfJsonLine, FIELDS, fieldsProblem, recordOfJsonLine, sameAuditFields } from "../../src/audit/exportLines.ts";
import {
  CHECKPOINT_JWS_TYPE,
  deriveAuditFields,
  EXPORT_FORMAT,
  EXPORT_JWS_TYPE,
  EXPORT_VERSION,
  signatureOf,
  type EventRecord,
  type ExportSummary,
  type HeaderRecord,
} from "../../src/audit/exportFormat.ts";
import { readExportRecords } from "../../src/audit/node/readExportFile.ts";
import type { VerifiableRecord } from "../../src/audit/exportLines.ts";
import { verifyAuditRecords } from "../../src/audit/verifyAuditRecords.ts";
import { verifyExportFile, type VerifyFileStats } from "../../src/audit/node/verifyExportFile.ts";
import { chainHash, contentHash, genesisHash, type HashedContent } from "../../src/audit/hashing.ts";

// `keyplane audit verify` reads an export checking each line alone where it is read (exportLines.ts),
// on one core or in worker threads: what it finds must be what the verifier finds in the records
// (verifyAuditRecords.test.ts holds the reports equal for every kind of tampering).

const TENANT = "acme";

/** JSON as PostgreSQL prints a jsonb value: keys by length then bytes, ", " and ": " between items. */
function jsonbText(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(jsonbText).join(", ") + "]";
  const keys = Object.keys(value).sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  return "{" + keys.map((k) => `${JSON.stringify(k)}: ${jsonbText((value as Record<string, unknown>)[k])}`).join(", ") + "}";
}

/** An event line as readExportPage.ts writes one (its order, jsonb's text for data, metadata and audit values). */
function keyplaneLine(e: HashedContent, sequence: number, chain: string, content = contentHash(e)): string {
  const audit = Object.entries(deriveAuditFields(e))
    .map(([k, v]) => `"${k}":${jsonbText(v)}`)
    .join(",");
  return (
    `{"kind":"event","sequence":${sequence},"eventId":${JSON.stringify(e.eventId)},"tenantId":${JSON.stringify(e.tenantId)},"streamType":${JSON.stringify(e.streamType)},` +
    `"streamId":${JSON.stringify(e.streamId)},"streamVersion":${e.streamVersion},"type":${JSON.stringify(e.type)},"schemaVersion":${e.schemaVersion},"occurredAt":${JSON.stringify(e.occurredAt)},` +
    `"data":${jsonbText(e.data)},"metadata":${jsonbText(e.metadata)},"contentHash":"${content}","chainHash":"${chain}","audit":{${audit}}}`
  );
}

function content(sequence: number, data: unknown = { n: sequence }): HashedContent {
  return {
    eventId: randomUUID(),
    tenantId: TENANT,
    streamType: "thing",
    streamId: `thing-${sequence}`,
    streamVersion: 1,
    type: "thing.happened",
    schemaVersion: 1,
    data,
    metadata: { actor: { subject: "alice", kind: "user", roles: ["admin"] }, requestId: `r-${sequence}`, sourceIp: "192.0.2.1" },
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
  };
}

const DATA = [
  (s: number) => ({ n: s }),
  (s: number) => ({
    level: "warning",
    status: "denied",
    resource: "graphql",
    action: "installation:manage",
    details: { operation: "revoke", ids: [s, s + 1] },
  }),
  (s: number) => ({ text: `ünïcödé 😀 ${s}`, quote: 'say "hi"', path: "C:\\temp", tab: "a\tb", keys: { "10": 1, "9": 2, b: 3, a: [1.5, -0, 1e21, 0.1] } }),
  (s: number) => ({ details: `plain ${s}`, userAgent: "bench/1.0 (test)" }),
];

async function newKey(): Promise<{ signer: AuditSigner; jwks: JSONWebKeySet }> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { signer: createAuditSigner({ kid, privateKey }), jwks: { keys: [{ ...jwk, kid, alg: "ES256", use: "sig" }] } };
}

let key: Awaited<ReturnType<typeof newKey>>;
let scratch: string;
beforeAll(async () => {
  key = await newKey();
  scratch = mkdtempSync(join(tmpdir(), "keyplane-verify-file-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A genuine export of n events as the server writes it: header, event lines, a checkpoint every `every`, the signed end line. */
async function exportFile(n: number, every = 50, dataOf: (s: number) => unknown = (s) => DATA[s % DATA.length]!(s)): Promise<string[]> {
  const anchor = { type: "genesis" as const, sequence: 0 as const, chainHash: genesisHash(TENANT) };
  const header: HeaderRecord = {
    kind: "header",
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportId: randomUUID(),
    tenantId: TENANT,
    exportedAt: "2026-01-02T00:00:00.000Z",
    fromSequence: 1,
    toSequence: n,
    filter: { from: null, to: null, types: null },
    anchor,
    recordedAs: { sequence: n + 1 },
  };
  const lines = [JSON.stringify(header)];
  let chain = anchor.chainHash;
  let previousSignature: string | null = null;
  let lastCheckpoint: ExportSummary["lastCheckpoint"] = null;
  let checkpoints = 0;
  for (let s = 1; s <= n; s++) {
    const e = content(s, dataOf(s));
    chain = chainHash(chain, s, contentHash(e));
    lines.push(keyplaneLine(e, s, chain));
    if (s % every === 0) {
      const payload = { tenantId: TENANT, sequence: s, chainHash: chain, previousSignature, signedAt: e.occurredAt };
      const jws = await key.signer.sign(CHECKPOINT_JWS_TYPE, payload);
      lines.push(JSON.stringify({ kind: "checkpoint", sequence: s, chainHash: chain, previousSignature, signedAt: e.occurredAt, kid: key.signer.kid, jws }));
      previousSignature = signatureOf(jws);
      lastCheckpoint = { sequence: s, signature: previousSignature };
      checkpoints++;
    }
  }
  const { kind: _kind, ...rest } = header;
  const summary: ExportSummary = { ...rest, anchor, events: n, omitted: 0, checkpoints, lastCheckpoint, lastSequence: n, lastChainHash: chain };
  lines.push(JSON.stringify({ kind: "end", ...summary, jws: await key.signer.sign(EXPORT_JWS_TYPE, summary) }));
  return lines;
}

/**
 * The report verifyAuditRecords gives over readExportRecords (every record as parsed), and
 * verifyExportFile's in each mode: with threads, the rest of the file comes once the worker (started
 * at the second batch) is loaded, so that it checks its share (until then the main thread does).
 */
async function reports(chunks: Array<string | Buffer>) {
  const reference = await verifyAuditRecords(readExportRecords(Readable.from(chunks)), { source: "export", keys: key.jwks });
  const oneCore = await verifyExportFile(Readable.from(chunks), { keys: key.jwks, threads: 1 });
  const stats: VerifyFileStats = { batches: 0, byWorkers: 0, workersReady: 0 };
  async function* onceWorkerIsReady() {
    let bytes = 0;
    for (const chunk of chunks) {
      if (bytes >= 16_384) while (stats.workersReady === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      yield chunk;
      bytes += chunk.length;
    }
  }
  const threads = await verifyExportFile(Readable.from(onceWorkerIsReady()), { keys: key.jwks, threads: 2, batchBytes: 4096, stats });
  return { reference, oneCore, threads, stats };
}

describe("verifying an export file", () => {
  it("verifies a genuine file on one core and with a worker thread, which checks batches of its lines", async () => {
    const lines = await exportFile(400);
    const text = lines.join("\n") + "\n";
    const { reference, oneCore, threads, stats } = await reports([text.slice(0, 20_000), text.slice(20_000)]);
    expect(reference).toMatchObject({ ok: true, events: 400, checkpoints: 8 });
    expect(oneCore).toEqual(reference);
    expect(threads).toEqual(reference);
    // (the first two batches of lines are always the worker's: it is given two at a time)
    expect(stats.byWorkers).toBeGreaterThanOrEqual(2);
  });

  it("reads the file however it is cut into chunks, with CRLF, blank lines and no final newline", async () => {
    const lines = await exportFile(60, 20);
    const text = Buffer.from(lines.join("\r\n").replace(/\r\n(?=\{"kind":"event","sequence":3\d,)/g, "\r\n\n  \r\n"));
    // Chunks of 7 bytes: lines, and characters of several bytes, cut anywhere.
    const chunks = Array.from({ length: Math.ceil(text.length / 7) }, (_, i) => text.subarray(i * 7, i * 7 + 7));
    const { reference, oneCore, threads } = await reports(chunks);
    expect(reference).toMatchObject({ ok: true, events: 60 });
    expect(oneCore).toEqual(reference);
    expect(threads).toEqual(reference);
  });

  it("names the first bad line as the verifier does, when it is checked in a worker thread", async () => {
    const lines = await exportFile(300);
    const at = (s: number) => lines.findIndex((l) => l.startsWith(`{"kind":"event","sequence":${s},`));
    const cases: Array<(l: string[]) => void> = [
      (l) => (l[at(252)] = l[at(252)]!.replace('"n": 252', '"n": 253')),
      (l) => (l[at(250)] = l[at(250)]!.replace('"level":"info"', '"level":"debug"')),
      (l) => (l[at(250)] = l[at(250)]!.replace('{"kind":"event","sequence":250,', '{"kind":"event","sequence":250,"sequence":250,')),
      (l) => (l[at(251)] = "not json"),
      (l) => (l[at(249)] = Buffer.from([0xc3, 0x28]).toString("latin1")),
      (l) => l.splice(at(260), 1),
      (l) => l.splice(at(200), 2, l[at(201)]!, l[at(200)]!),
      (l) => l.splice(l.length - 1, 1),
    ];
    for (const tamper of cases) {
      const copy = [...lines];
      tamper(copy);
      const text = copy.join("\n");
      const { reference, oneCore, threads } = await reports([text.slice(0, 20_000), text.slice(20_000)]);
      expect(reference.ok, tamper.toString()).toBe(false);
      expect(oneCore, tamper.toString()).toEqual(reference);
      expect(threads, tamper.toString()).toEqual(reference);
    }
  });

  it("reads an open file in chunks of a megabyte, a line of several megabytes included", async () => {
    const lines = await exportFile(3000, 500, (s) => (s === 1500 ? { big: "x".repeat(2_500_000) } : DATA[s % DATA.length]!(s)));
    const path = join(scratch, "export.ndjson");
    writeFileSync(path, lines.join("\n"));
    const reference = await verifyAuditRecords(readExportRecords(Readable.from([lines.join("\n")])), { source: "export", keys: key.jwks });
    expect(reference).toMatchObject({ ok: true, events: 3000 });
    for (const threads of [1, 2]) expect(await verifyExportFile(await open(path), { keys: key.jwks, threads })).toEqual(reference);
    writeFileSync(path, lines.join("\n").replace('"n": 2000', '"n": 2001'));
    const tampered = await verifyExportFile(await open(path), { keys: key.jwks, threads: 1 });
    expect(tampered.problem).toMatchObject({ kind: "modified", sequence: 2000 });
    for (const threads of [2]) expect(await verifyExportFile(await open(path), { keys: key.jwks, threads })).toEqual(tampered);
  });

  it("verifies a CSV export on the main thread", async () => {
    const file = "kind,sequence\n";
    const { reference, oneCore, threads } = await reports([file]);
    expect(reference.ok).toBe(false);
    expect(oneCore).toEqual(reference);
    expect(threads).toEqual(reference);
  });
});

// What checking a line alone may conclude: a CheckedEvent only for a line the verifier would find
// sound in every check of the line alone, and otherwise exactly the record JSON.parse gives.
describe("checking a line alone", () => {
  /** The specification: the record as parsed, and whether every check of the line alone passes. */
  function expected(line: string, n: number): VerifiableRecord {
    const r = recordOfJsonLine(line, n);
    if (r.kind !== "event" || r instanceof CheckedEvent) return r;
    const e = r as EventRecord;
    const typed = Number.isSafeInteger(e.sequence) && [e.tenantId, e.type, e.occurredAt, e.contentHash, e.chainHash].every((v) => typeof v === "string");
    let hashed: string | null;
    try {
      hashed = contentHash(e);
    } catch {
      hashed = null;
    }
    if (!typed || fieldsProblem(e, FIELDS.event) !== null || hashed !== e.contentHash || !sameAuditFields(e.audit, deriveAuditFields(e))) return r;
    return new CheckedEvent(e.sequence, e.tenantId, e.type, e.occurredAt, e.contentHash, e.chainHash);
  }

  const base = (data: unknown, metadata?: unknown) => {
    const e = { ...content(7, data), ...(metadata === undefined ? {} : { metadata }) };
    return { e, line: keyplaneLine(e, 7, "c".repeat(64)) };
  };
  /** Each change of a line, made to lines of several kinds of content. */
  const changes: Array<[string, (line: string, e: HashedContent) => string]> = [
    ["as written", (l) => l],
    ["spaced", (l) => JSON.stringify(JSON.parse(l), null, 1).replace(/\n/g, " ")],
    ["compact, audit first", (l) => JSON.stringify((({ audit, ...rest }) => ({ kind: rest.kind, audit, ...rest }))(JSON.parse(l)))],
    ["compact, audit in the middle", (l) => JSON.stringify((({ audit, chainHash, ...rest }) => ({ ...rest, audit, chainHash }))(JSON.parse(l)))],
    ["audit spaced", (l) => l.replace(/,"audit":\{(.*)\}\}$/, (_m, a: string) => `,"audit": {${a.replace(/":/g, '": ')}}}`)],
    ["trailing space", (l) => l + " "],
    ["key twice in the head", (l) => l.replace('"sequence":7,', '"sequence":7,"sequence":7,')],
    ["key twice in the head, spaced", (l) => l.replace('"sequence":7,', '"sequence" :7,"sequence"\t: 7,')],
    ["key twice in data", (l) => l.replace('"data":{', '"data":{"zz": 1, "zz": 1, ')],
    ["key twice in the audit fields", (l) => l.replace('"level":', '"level":"info","level":')],
    ["audit twice", (l) => l.replace('"contentHash":', '"audit":{},"contentHash":')],
    ["audit field changed", (l) => l.replace(/"status":"[^"]*"/, '"status":"failure"')],
    ["audit field added", (l) => l.replace('"details":', '"extra":1,"details":')],
    ["audit field removed", (l) => l.replace(/,"requestId":[^,]*/, "")],
    ["audit not an object", (l) => l.replace(/,"audit":\{.*\}\}$/, ',"audit":null}')],
    ["audit of another spelling", (l) => l.replace(/"timestamp":"([^"]*)"/, '"timestamp":"\\u0032$1"'.replace("$1", "$1"))],
    ["content changed", (l) => l.replace('"streamId":"thing-7"', '"streamId":"thing-8"')],
    ["content rehashed", (_l, e) => keyplaneLine({ ...e, streamId: "other" }, 7, "c".repeat(64))],
    [
      "content changed, hash recomputed, audit stale",
      (l, e) =>
        l
          .replace(/"contentHash":"[0-9a-f]*"/, `"contentHash":"${contentHash({ ...e, data: { level: "error" } })}"`)
          .replace(/"data":\{[^}]*\}/, '"data":{"level": "error"}'),
    ],
    ["a field added", (l) => l.replace('"kind":"event",', '"kind":"event","actor":"alice",')],
    ["a field missing", (l) => l.replace(/"schemaVersion":1,/, "")],
    ["sequence a string", (l) => l.replace('"sequence":7,', '"sequence":"7",')],
    ["tenant a number", (l) => l.replace(`"tenantId":"${TENANT}",`, '"tenantId":7,')],
    ["content hash a number", (l) => l.replace(/"contentHash":"[0-9a-f]*"/, '"contentHash":7')],
    ["number out of range", (l) => l.replace('"data":{', '"data":{"big": 1e400, ')],
    ["numbers spelled otherwise", (l) => l.replace('"schemaVersion":1,', '"schemaVersion":1.0,').replace('"streamVersion":1,', '"streamVersion":1E0,')],
    ["escaped characters", (l) => l.replace('"streamType":"thing"', '"streamType":"th\\u0069ng"')],
    ["an audit member in a string", (l) => l.replace('"data":{', '"data":{"s": "x\\",\\"audit\\":{", ')],
    ["an audit member in the data", (l) => l.replace('"data":{', '"data":{"audit": {"timestamp": 1}, ')],
    ["__proto__ in the head", (l) => l.replace('"kind":"event",', '"kind":"event","__proto__":{},')],
    ["__proto__ in the data", (l) => l.replace('"data":{', '"data":{"__proto__": {"a": 1}, ')],
    ["not closed", (l) => l.slice(0, -1)],
    ["cut in the audit", (l) => l.slice(0, -40)],
    ["closed twice", (l) => l + "}"],
    ["not an event", (l) => l.replace('"kind":"event"', '"kind":"omitted"')],
    ["kind not a string", (l) => l.replace('"kind":"event"', '"kind":1')],
    ["kind twice", (l) => l.replace('"kind":"event",', '"kind":"event","kind":"event",')],
    ["an array", (l) => `[${l}]`],
    ["not JSON", () => '{"kind":"event",'],
  ];

  it("gives a CheckedEvent only where every check passes, and otherwise the record as parsed", () => {
    const bases = [
      base({ n: 7 }),
      base({ level: "warning", status: "denied", resource: "graphql", action: "x:y", details: { operation: "revoke" } }),
      base({ details: "plain", level: "debug" }, { actor: { subject: 42 }, sourceIp: null, requestId: "r" }),
      base({ text: "ünïcödé 😀 \u2028", quote: 'say "hi"', n: [1.5, -0, 1e21, 0.1, 2 ** 53] }),
      base({ "10": 1, "9": 2, b: { d: 1, c: [{ z: 1, y: 2 }] } }, "not an object"),
      base(null, null),
    ];
    let checked = 0;
    for (const { e, line: original } of bases) {
      for (const [name, change] of changes) {
        const line = change(original, e);
        const want = expected(line, 3);
        const got = checkedRecordOfJsonLine(line, 3);
        expect(got, `${name}: ${line}`).toStrictEqual(want);
        if (got instanceof CheckedEvent) checked++;
      }
    }
    // The genuine lines, and the ones spelled otherwise, are checked events.
    expect(checked).toBeGreaterThan(bases.length * 3);
  });
});
