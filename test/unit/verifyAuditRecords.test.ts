import { createHash, generateKeyPairSync, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { Readable } from "node:stream";
import { calculateJwkThumbprint, exportJWK, type JSONWebKeySet } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createAuditSigner, type AuditSigner } from "../../src/audit/auditSignatures.ts";
import {
  ANCHOR_FIELDS,
  CHECKPOINT_JWS_TYPE,
  deriveAuditFields,
  EXPORT_FORMAT,
  EXPORT_JWS_TYPE,
  EXPORT_VERSION,
  LINE_FIELDS,
  signatureOf,
  type CheckpointRecord,
  type EndRecord,
  type EventRecord,
  type ExportFilter,
  type ExportRecord,
  type ExportSummary,
  type HeaderRecord,
  type OmittedRecord,
} from "../../src/audit/exportFormat.ts";
import { readExportRecords } from "../../src/audit/node/readExportFile.ts";
import type { VerifiableRecord } from "../../src/audit/exportLines.ts";
import { verifyAuditRecords, type ProblemKind, type VerificationReport } from "../../src/audit/verifyAuditRecords.ts";
import { verifyExportFile } from "../../src/audit/node/verifyExportFile.ts";
import { canonicalJson } from "../../src/audit/canonicalJson.ts";
import { chainHash, contentHash, genesisHash } from "../../src/audit/hashing.ts";

// The verifier on exports built here with the real hashing and a real ES256 key: every kind of
// tampering, with and without renumbering, and the first bad sequence it must name.

const TENANT = "acme";

async function newKey(): Promise<{ signer: AuditSigner; jwks: JSONWebKeySet }> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { signer: createAuditSigner({ kid, privateKey }), jwks: { keys: [{ ...jwk, kid, alg: "ES256", use: "sig" }] } };
}

let keyplane: Awaited<ReturnType<typeof newKey>>;
let mallory: Awaited<ReturnType<typeof newKey>>;
beforeAll(async () => {
  keyplane = await newKey();
  mallory = await newKey();
});

type Row = EventRecord | OmittedRecord;

function event(sequence: number, data: Record<string, unknown> = { n: sequence }): Omit<EventRecord, "chainHash"> {
  const e = {
    kind: "event" as const,
    sequence,
    eventId: randomUUID(),
    tenantId: TENANT,
    streamType: "thing",
    streamId: `thing-${sequence}`,
    streamVersion: 1,
    type: "thing.happened",
    schemaVersion: 1,
    data,
    metadata: { actor: { subject: "alice", kind: "user", roles: ["admin"] } },
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
  };
  return { ...e, contentHash: hashOf(e), audit: deriveAuditFields(e) };
}

/** The content hash over exactly the hashed fields (not kind, sequence or the hashes). */
const hashOf = ({
  eventId,
  tenantId,
  streamType,
  streamId,
  streamVersion,
  type,
  schemaVersion,
  data,
  metadata,
  occurredAt,
}: Omit<EventRecord, "kind" | "sequence" | "contentHash" | "chainHash" | "audit">) =>
  contentHash({ eventId, tenantId, streamType, streamId, streamVersion, type, schemaVersion, data, metadata, occurredAt });

/** A genuine log of n events (chained), with checkpoints signed at the given sequences. */
async function genuineLog(
  n: number,
  checkpointsAt: number[] = [],
  signer = keyplane.signer,
): Promise<{ rows: EventRecord[]; checkpoints: CheckpointRecord[] }> {
  const rows: EventRecord[] = [];
  let chain = genesisHash(TENANT);
  for (let s = 1; s <= n; s++) {
    const e = event(s);
    chain = chainHash(chain, s, e.contentHash);
    rows.push({ ...e, chainHash: chain });
  }
  const checkpoints: CheckpointRecord[] = [];
  let previous: string | null = null;
  for (const s of checkpointsAt) {
    checkpoints.push(await signCheckpoint(s, rows[s - 1]!.chainHash, previous, signer));
    previous = signatureOf(checkpoints.at(-1)!.jws);
  }
  return { rows, checkpoints };
}

async function signCheckpoint(sequence: number, chain: string, previousSignature: string | null, signer: AuditSigner): Promise<CheckpointRecord> {
  const payload = { tenantId: TENANT, sequence, chainHash: chain, previousSignature, signedAt: "2026-01-01T01:00:00.000Z" };
  return {
    kind: "checkpoint",
    sequence,
    chainHash: chain,
    previousSignature,
    signedAt: payload.signedAt,
    kid: signer.kid,
    jws: await signer.sign(CHECKPOINT_JWS_TYPE, payload),
  };
}

/** An export file's records: header, rows with checkpoints after their events, signed end line. */
async function exportOf(
  rows: Row[],
  checkpoints: CheckpointRecord[] = [],
  { anchor, filter = { from: null, to: null, types: null }, fromSequence }: { anchor?: CheckpointRecord; filter?: ExportFilter; fromSequence?: number } = {},
): Promise<ExportRecord[]> {
  const exportId = randomUUID();
  const anchorField = anchor
    ? { type: "checkpoint" as const, ...withoutKind(anchor) }
    : { type: "genesis" as const, sequence: 0 as const, chainHash: genesisHash(TENANT) };
  const header: HeaderRecord = {
    kind: "header",
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportId,
    tenantId: TENANT,
    exportedAt: "2026-01-02T00:00:00.000Z",
    fromSequence: fromSequence ?? (anchor?.sequence ?? 0) + 1,
    toSequence: rows.at(-1)?.sequence ?? 0,
    filter,
    anchor: anchorField,
    recordedAs: { sequence: (rows.at(-1)?.sequence ?? 0) + 1 },
  };
  const body: ExportRecord[] = [];
  for (const row of rows) {
    body.push(row);
    body.push(...checkpoints.filter((c) => c.sequence === row.sequence));
  }
  const last = rows.at(-1);
  const summary: ExportSummary = {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportId,
    tenantId: TENANT,
    exportedAt: header.exportedAt,
    fromSequence: header.fromSequence,
    toSequence: header.toSequence,
    filter: header.filter,
    anchor: { type: anchorField.type, sequence: anchorField.sequence, chainHash: anchorField.chainHash },
    recordedAs: header.recordedAs,
    events: rows.filter((r) => r.kind === "event").length,
    omitted: rows.filter((r) => r.kind === "omitted").length,
    checkpoints: body.filter((r) => r.kind === "checkpoint").length,
    lastCheckpoint: lastCheckpointOf(body),
    lastSequence: last?.sequence ?? anchorField.sequence,
    lastChainHash: last?.chainHash ?? anchorField.chainHash,
  };
  const end: EndRecord = { kind: "end", ...summary, jws: await keyplane.signer.sign(EXPORT_JWS_TYPE, summary) };
  return [header, ...body, end];
}

function withoutKind({ kind: _kind, ...rest }: CheckpointRecord) {
  return rest;
}

function lastCheckpointOf(records: ExportRecord[]): ExportSummary["lastCheckpoint"] {
  const last = records.filter((r): r is CheckpointRecord => r.kind === "checkpoint").at(-1);
  return last ? { sequence: last.sequence, signature: signatureOf(last.jws) } : null;
}

/** The records with the end line signed again over what they now hold, as Keyplane would have signed it. */
async function resigned(records: ExportRecord[], signer = keyplane.signer): Promise<ExportRecord[]> {
  const { kind: _kind, jws: _jws, ...summary } = records.at(-1) as EndRecord;
  const body = records.slice(1, -1);
  const rows = body.filter((r): r is Row => r.kind === "event" || r.kind === "omitted");
  const now: ExportSummary = {
    ...summary,
    events: rows.filter((r) => r.kind === "event").length,
    omitted: rows.filter((r) => r.kind === "omitted").length,
    checkpoints: body.filter((r) => r.kind === "checkpoint").length,
    lastCheckpoint: lastCheckpointOf(body),
  };
  return [records[0]!, ...body, { kind: "end", ...now, jws: await signer.sign(EXPORT_JWS_TYPE, now) }];
}

const verify = async (records: ExportRecord[], keys: JSONWebKeySet | undefined = keyplane.jwks) => {
  const report = await verifyAuditRecords(records, { source: "export", keys });
  await expectSameReportFromFile(records, keys, report);
  return report;
};

/**
 * `keyplane audit verify` reads the records from a file, checking each line alone where it is read
 * (verifyExportFile.test.ts runs it with worker threads): the report must be the one
 * verifyAuditRecords gives for the records, whatever was tampered with, with the lines' members in
 * the records' order or in the server's (the audit fields last, which the reader reads faster).
 */
async function expectSameReportFromFile(records: ExportRecord[], keys: JSONWebKeySet | undefined, report: VerificationReport) {
  // Only records a file can hold as they are (no undefined field, no malformed stand-in).
  if (records.some((r) => (r.kind as string) === "malformed" || !isDeepStrictEqual(JSON.parse(JSON.stringify(r)), r))) return;
  const serverOrder = (r: ExportRecord) => (r.kind === "event" && "audit" in r ? (({ kind, audit, ...rest }) => ({ kind, ...rest, audit }))(r) : r);
  for (const order of [(r: ExportRecord) => r, serverOrder]) {
    const file = records.map((r) => JSON.stringify(order(r))).join("\n") + "\n";
    expect(await verifyExportFile(Readable.from([file]), { keys, threads: 1 })).toEqual(report);
  }
}

async function expectProblem(records: ExportRecord[], kind: ProblemKind, sequence: number | null) {
  const report = await verify(records);
  expect(report.ok, JSON.stringify(report.problem)).toBe(false);
  expect({ kind: report.problem!.kind, sequence: report.problem!.sequence }).toEqual({ kind, sequence });
  return report;
}

const stubOf = (r: Row): OmittedRecord => ({ kind: "omitted", sequence: r.sequence, contentHash: r.contentHash, chainHash: r.chainHash });

/** The records with the one at `index` changed. */
const edited = (records: ExportRecord[], index: number, change: (r: never) => object): ExportRecord[] =>
  records.map((r, i) => (i === index ? (change(r as never) as ExportRecord) : r));
const indexOf = (records: ExportRecord[], kind: string, sequence: number) =>
  records.findIndex((r) => r.kind === kind && (r as { sequence?: number }).sequence === sequence);

/** The rows with sequences renumbered densely from the first one's, chain hashes left as they were. */
const renumber = (rows: Row[]): Row[] => rows.map((r, i) => ({ ...r, sequence: rows[0]!.sequence + i }));

/** Rows with their chain recomputed after a change, as a forger who knows the formula would. */
function rechain(rows: Row[], from: number): Row[] {
  let chain = from === 1 ? genesisHash(TENANT) : rows[from - 2]!.chainHash;
  return rows.map((r) => {
    if (r.sequence < from) return r;
    const content = r.kind === "event" ? hashOf(r) : r.contentHash;
    chain = chainHash(chain, r.sequence, content);
    return r.kind === "event"
      ? { ...r, contentHash: content, chainHash: chain, audit: deriveAuditFields(r) }
      : { ...r, contentHash: content, chainHash: chain };
  });
}

describe("verifying an export", () => {
  it("accepts a genuine export from genesis, with its checkpoints, and says what it verified", async () => {
    const { rows, checkpoints } = await genuineLog(30, [10, 25]);
    const report = await verify(await exportOf(rows, checkpoints));
    expect(report).toMatchObject({
      ok: true,
      tenantId: TENANT,
      startsFrom: "genesis",
      anchorSequence: 0,
      lastSequence: 30,
      events: 30,
      omitted: 0,
      checkpoints: 2,
      signatures: "verified",
      problem: null,
    });
  });

  it("accepts an export that starts from a signed checkpoint, and one with omitted stubs", async () => {
    const { rows, checkpoints } = await genuineLog(30, [10, 25]);
    const fromCheckpoint = await verify(await exportOf(rows.slice(10), checkpoints.slice(1), { anchor: checkpoints[0] }));
    expect(fromCheckpoint).toMatchObject({ ok: true, startsFrom: "checkpoint", anchorSequence: 10, lastSequence: 30, events: 20 });
    const stubbed: Row[] = rows.map((r) =>
      r.sequence % 3 ? r : { kind: "omitted", sequence: r.sequence, contentHash: r.contentHash, chainHash: r.chainHash },
    );
    // (stubs stand for events the filter leaves out; a stub's type is hidden, so any filter allows them)
    expect(await verify(await exportOf(stubbed, checkpoints, { filter: { from: null, to: null, types: ["thing.happened"] } }))).toMatchObject({
      ok: true,
      events: 20,
      omitted: 10,
    });
  });

  it("names a modified event: changed content, or content and content hash changed together", async () => {
    const { rows } = await genuineLog(20);
    const changed = rows.map((r) => (r.sequence === 7 ? { ...r, data: { n: 700 } } : r));
    await expectProblem(await exportOf(changed), "modified", 7);
    const rehashed = rows.map((r) => (r.sequence === 7 ? { ...r, data: { n: 700 }, contentHash: hashOf({ ...r, data: { n: 700 } }) } : r));
    await expectProblem(await exportOf(rehashed), "modified", 7);
    const chainChanged = rows.map((r) => (r.sequence === 20 ? { ...r, chainHash: "0".repeat(64) } : r));
    await expectProblem(await exportOf(chainChanged), "modified", 20);
    const stubChanged: Row[] = rows.map((r) => (r.sequence === 4 ? { kind: "omitted", sequence: 4, contentHash: "f".repeat(64), chainHash: r.chainHash } : r));
    await expectProblem(await exportOf(stubChanged), "modified", 4);
  });

  it("names a deleted event, with the rows after it renumbered or not, in the middle, first or at the end", async () => {
    const { rows } = await genuineLog(20);
    const without = (s: number) => rows.filter((r) => r.sequence !== s);
    await expectProblem(await exportOf(without(9)), "deleted", 9);
    await expectProblem(await exportOf(without(1)), "deleted", 1);
    await expectProblem(await exportOf(rows.filter((r) => r.sequence < 9 || r.sequence > 11)), "deleted", 9);
    await expectProblem(await exportOf([...rows.slice(0, 8), ...renumber(rows.slice(9))]), "deleted", 9);
    // The last event gone, the end line re-signed by nobody: the end line still says 20.
    const records = await exportOf(rows);
    await expectProblem(
      records.filter((r) => !(r.kind === "event" && r.sequence === 20)),
      "deleted",
      20,
    );
  });

  it("names an inserted row: a duplicate sequence, a forged event with or without a fitting chain hash", async () => {
    const { rows } = await genuineLog(20);
    // Two lines claiming one sequence: named at that sequence.
    await expectProblem(await exportOf([...rows.slice(0, 8), { ...rows[7]!, eventId: randomUUID() }, ...rows.slice(8)]), "inserted", 8);
    const forged = event(9, { n: "forged" });
    // Without a chain hash that fits, the following rows renumbered.
    const naive = [...rows.slice(0, 8), { ...forged, chainHash: "a".repeat(64) }, ...renumber(rows.slice(8)).map((r) => ({ ...r, sequence: r.sequence + 1 }))];
    await expectProblem(await exportOf(naive), "inserted", 9);
    // With a chain hash computed from the row before it: only the next row shows it.
    const fitting = [
      ...rows.slice(0, 8),
      { ...forged, chainHash: chainHash(rows[7]!.chainHash, 9, forged.contentHash) },
      ...rows.slice(8).map((r) => ({ ...r, sequence: r.sequence + 1 })),
    ];
    await expectProblem(await exportOf(fitting), "inserted", 9);
    // A row claiming a later sequence, put before the genuine ones: two rows claim 15.
    await expectProblem(await exportOf([...rows.slice(0, 8), { ...forged, sequence: 15, chainHash: "b".repeat(64) }, ...rows.slice(8)]), "inserted", 15);
    // ... and one claiming a sequence no other row claims.
    await expectProblem(await exportOf([...rows.slice(0, 8), { ...forged, sequence: 25, chainHash: "b".repeat(64) }, ...rows.slice(8)]), "inserted", 9);
  });

  it("names reordered events: swapped lines, swapped and renumbered, moved further", async () => {
    const { rows } = await genuineLog(20);
    const swapped = [...rows.slice(0, 10), rows[11]!, rows[10]!, ...rows.slice(12)];
    await expectProblem(await exportOf(swapped), "reordered", 11);
    await expectProblem(await exportOf(renumber(swapped)), "reordered", 11);
    const movedDown = [...rows.slice(0, 4), ...rows.slice(5, 12), rows[4]!, ...rows.slice(12)];
    await expectProblem(await exportOf(movedDown), "reordered", 5);
    const movedUp = [...rows.slice(0, 4), rows[12]!, ...rows.slice(4, 12), ...rows.slice(13)];
    await expectProblem(await exportOf(movedUp), "reordered", 5);
  });

  it("names a cut tail: the end line gone, or the end line and rows before it", async () => {
    const { rows } = await genuineLog(20);
    const records = await exportOf(rows);
    await expectProblem(records.slice(0, -1), "truncated", 21);
    await expectProblem(records.slice(0, -6), "truncated", 16);
    await expectProblem([records[0]!], "truncated", 1);
  });

  it("refuses a forged or altered end line, and counts that do not match what was signed", async () => {
    const { rows } = await genuineLog(10);
    const records = await exportOf(rows);
    const end = records.at(-1) as EndRecord;
    await expectProblem([...records.slice(0, -1), { ...end, lastSequence: 9 }], "end-signature", null);
    const { jws: _jws, kind: _kind, ...summary } = end;
    const forgedEnd: EndRecord = { ...end, events: 9, omitted: 1, jws: await mallory.signer.sign(EXPORT_JWS_TYPE, { ...summary, events: 9, omitted: 1 }) };
    await expectProblem([...records.slice(0, -1), forgedEnd], "end-signature", null);
    // Rows rewritten with a consistent chain after the last checkpoint: only the signed end line shows it.
    const rewritten = rechain(
      rows.map((r) => (r.sequence === 6 ? { ...r, data: { n: "rewritten" } } : r)),
      6,
    );
    // (the genuine header and end line around the rewritten rows)
    const withGenuineEnd = [records[0]!, ...(await exportOf(rewritten)).slice(1, -1), end];
    await expectProblem(withGenuineEnd, "end-mismatch", 1);
    // An event turned into a stub: the chain holds; in an export without a filter that is named at once.
    const hidden: Row[] = rows.map((r) => (r.sequence === 3 ? { kind: "omitted", sequence: 3, contentHash: r.contentHash, chainHash: r.chainHash } : r));
    await expectProblem([records[0]!, ...(await exportOf(hidden)).slice(1, -1), end], "modified", 3);
    // With a filter a stub's type is hidden: only the signed counts show it.
    const filter = { from: null, to: null, types: ["thing.happened"] };
    const filtered = await exportOf(rows, [], { filter });
    await expectProblem([filtered[0]!, ...(await exportOf(hidden, [], { filter })).slice(1, -1), filtered.at(-1)!], "end-mismatch", null);
  });

  it("refuses a forged checkpoint, a checkpoint over rewritten events, and a missing checkpoint", async () => {
    const { rows, checkpoints } = await genuineLog(30, [10, 20]);
    // Signed with another key: no such key in Keyplane's JWKS.
    const forged = await signCheckpoint(20, rows[19]!.chainHash, signatureOf(checkpoints[0]!.jws), mallory.signer);
    await expectProblem(await exportOf(rows, [checkpoints[0]!, forged]), "checkpoint-signature", 20);
    // A genuine checkpoint line with its chain hash edited.
    await expectProblem(await exportOf(rows, [checkpoints[0]!, { ...checkpoints[1]!, chainHash: "c".repeat(64) }]), "checkpoint-signature", 20);
    // Events 11-20 rewritten with a consistent chain: the checkpoint at 20 shows it.
    const rewritten = rechain(
      rows.map((r) => (r.sequence === 15 ? { ...r, data: { n: "rewritten" } } : r)),
      15,
    );
    const report = await expectProblem(await exportOf(rewritten, checkpoints), "checkpoint-mismatch", 11);
    expect(report.problem!.message).toMatch(/11–20 were rewritten/);
    // The checkpoint at 10 dropped: the one at 20 links to it.
    await expectProblem(await exportOf(rows, [checkpoints[1]!]), "checkpoint-link", 20);
    // An anchor checkpoint from another key.
    const foreignAnchor = await signCheckpoint(10, rows[9]!.chainHash, null, mallory.signer);
    await expectProblem(await exportOf(rows.slice(10), [checkpoints[1]!], { anchor: foreignAnchor }), "header", 10);
  });

  it("without a JWKS verifies the chain and says the signatures were not checked", async () => {
    const { rows, checkpoints } = await genuineLog(10, [5]);
    const report = await verifyAuditRecords(await exportOf(rows, checkpoints), { source: "export" });
    expect(report).toMatchObject({ ok: true, signatures: "unchecked" });
  });

  it("refuses what is not an export", async () => {
    expect((await verify([])).problem).toMatchObject({ kind: "header" });
    const { rows } = await genuineLog(3);
    expect((await verify(rows)).problem).toMatchObject({ kind: "header" });
    const records = await exportOf(rows);
    const report = await verifyAuditRecords([records[0]!, records[1]!, { kind: "malformed", line: 3, message: "not JSON" }, ...records.slice(2)], {
      source: "export",
      keys: keyplane.jwks,
    });
    expect(report.problem).toMatchObject({ kind: "malformed", sequence: 2 });
    const otherTenant = await exportOf(rows);
    (otherTenant[0] as HeaderRecord).tenantId = "globex";
    expect((await verify(otherTenant)).problem).toMatchObject({ kind: "header" });
  });
  it("names two lines claiming one sequence at that sequence, even when the first is a forgery chained to fit", async () => {
    const { rows } = await genuineLog(20);
    const forged = event(9, { n: "forged" });
    const fitting = { ...forged, chainHash: chainHash(rows[7]!.chainHash, 9, forged.contentHash) };
    await expectProblem(await exportOf([...rows.slice(0, 8), fitting, ...rows.slice(8)]), "inserted", 9);
    await expectProblem(await exportOf([...rows.slice(0, 9), fitting, ...rows.slice(9)]), "inserted", 9);
    // A line repeated as it is, and a stub of it next to it.
    await expectProblem(await exportOf([...rows.slice(0, 9), rows[8]!, ...rows.slice(9)]), "inserted", 9);
    await expectProblem(
      await exportOf([...rows.slice(0, 9), stubOf(rows[8]!), ...rows.slice(9)], [], { filter: { from: null, to: null, types: ["thing.happened"] } }),
      "inserted",
      9,
    );
  });

  it("refuses a checkpoint line, or a checkpoint anchor, that says anything its JWS does not sign", async () => {
    const { rows, checkpoints } = await genuineLog(30, [10, 20]);
    const [first, second] = checkpoints as [CheckpointRecord, CheckpointRecord];
    const { signedAt: _signedAt, ...withoutSignedAt } = second;
    for (const line of [
      { ...second, signedAt: "2030-01-01T00:00:00.000Z" },
      { ...second, kid: "someone-else" },
      { ...second, tenantId: TENANT },
      withoutSignedAt,
    ]) {
      await expectProblem(await exportOf(rows, [first, line as CheckpointRecord]), "checkpoint-signature", 20);
    }
    for (const anchor of [
      { ...first, signedAt: "2030-01-01T00:00:00.000Z" },
      { ...first, kid: "someone-else" },
      { ...first, note: "x" },
    ]) {
      await expectProblem(await exportOf(rows.slice(10), [second], { anchor: anchor as CheckpointRecord }), "header", 10);
    }
    const genesis = await exportOf(rows);
    await expectProblem(
      edited(genesis, 0, (h: HeaderRecord) => ({ ...h, anchor: { ...h.anchor, signedAt: "2030-01-01T00:00:00.000Z" } })),
      "header",
      1,
    );
  });

  it("names a dropped last checkpoint at its sequence: the end line signs the last one", async () => {
    const { rows, checkpoints } = await genuineLog(30, [10, 20, 25]);
    const records = await exportOf(rows, checkpoints);
    const without = (...sequences: number[]) => records.filter((r) => !(r.kind === "checkpoint" && sequences.includes(r.sequence)));
    await expectProblem(without(25), "checkpoint-link", 25);
    await expectProblem(without(20, 25), "checkpoint-link", 25);
    await expectProblem(without(10, 20, 25), "checkpoint-link", 25);
    // One in between: the next one's link shows it.
    await expectProblem(without(20), "checkpoint-link", 25);
    // A checkpoint line repeated: it no longer links to the one before it.
    const twice = records.flatMap((r) => (r.kind === "checkpoint" && r.sequence === 20 ? [r, r] : [r]));
    await expectProblem(twice, "checkpoint-link", 20);
    // Re-counted and re-signed by someone else: the end line's signature.
    await expectProblem(await resigned(without(25), mallory.signer), "end-signature", null);
  });

  it("refuses lines that are not exactly their fields: one more, one missing, audit fields not derived from the content", async () => {
    const { rows, checkpoints } = await genuineLog(10, [5]);
    const records = await exportOf(rows, checkpoints);
    const event4 = indexOf(records, "event", 4);
    await expectProblem(
      edited(records, event4, (r: EventRecord) => ({ ...r, actor: "alice" })),
      "malformed",
      4,
    );
    await expectProblem(
      edited(records, event4, ({ audit: _audit, ...r }: EventRecord) => r),
      "malformed",
      4,
    );
    await expectProblem(
      edited(records, event4, (r: EventRecord) => ({ ...r, audit: { ...r.audit, actor: "alice" } })),
      "modified",
      4,
    );
    await expectProblem(
      edited(records, event4, (r: EventRecord) => ({ ...r, audit: { ...r.audit, userId: "mallory" } })),
      "modified",
      4,
    );
    await expectProblem(
      edited(records, event4, (r: EventRecord) => ({ ...r, audit: { ...r.audit, details: { n: 4 } } })),
      "modified",
      4,
    );
    const stubbed = await exportOf(
      rows.map((r) => (r.sequence === 4 ? stubOf(r) : r)),
      checkpoints,
      { filter: { from: null, to: null, types: ["thing.happened"] } },
    );
    expect((await verify(stubbed)).ok).toBe(true);
    await expectProblem(
      edited(stubbed, event4, (r: OmittedRecord) => ({ ...r, type: "thing.happened" })),
      "malformed",
      4,
    );
    await expectProblem(
      edited(records, 0, (h: HeaderRecord) => ({ ...h, note: "x" })),
      "header",
      null,
    );
    await expectProblem(
      edited(records, records.length - 1, (e: EndRecord) => ({ ...e, note: "x" })),
      "end-signature",
      null,
    );
  });

  it("names a line whose kind is not the one the header says stands at its sequence", async () => {
    const { rows, checkpoints } = await genuineLog(30, [10]);
    // A partial export of 15-30 anchored at 10: 11-14 are stubs.
    const partial = rows.slice(10).map((r) => (r.sequence < 15 ? stubOf(r) : r));
    expect(await verify(await exportOf(partial, [], { anchor: checkpoints[0], fromSequence: 15 }))).toMatchObject({ ok: true, events: 16, omitted: 4 });
    // Counts re-signed to fit, as if by Keyplane: the kind of the line alone shows it.
    const shown = partial.map((r) => (r.sequence === 12 ? rows[11]! : r));
    await expectProblem(await resigned(await exportOf(shown, [], { anchor: checkpoints[0], fromSequence: 15 })), "modified", 12);
    const hidden = partial.map((r) => (r.sequence === 20 ? stubOf(r) : r));
    await expectProblem(await resigned(await exportOf(hidden, [], { anchor: checkpoints[0], fromSequence: 15 })), "modified", 20);
    // An event of a type the filter leaves out.
    await expectProblem(await resigned(await exportOf(rows, [], { filter: { from: null, to: null, types: ["other.type"] } })), "modified", 1);
    // The header is unsigned: one edited to excuse a stub is caught as a header that is not the signed one.
    const records = await exportOf(hidden, [], { anchor: checkpoints[0], fromSequence: 15 });
    await expectProblem(
      edited(records, 0, (h: HeaderRecord) => ({ ...h, filter: { ...h.filter, types: ["thing.happened"] } })),
      "header",
      null,
    );
  });

  it("refuses a version 1 file, whose end line does not sign its last checkpoint", async () => {
    const { rows } = await genuineLog(3);
    const records = await exportOf(rows);
    const report = await verify(edited(records, 0, (h: HeaderRecord) => ({ ...h, version: 1 })));
    expect(report.problem).toMatchObject({ kind: "header", sequence: null, message: expect.stringMatching(/version 1 files are no longer verified/) });
  });
});

// The reader refuses what two readers would read differently, and nothing Keyplane writes.
describe("reading an export file", () => {
  const read = async (input: string | Buffer) => {
    const records: VerifiableRecord[] = [];
    for await (const r of readExportRecords(Readable.from([input]))) records.push(r);
    return records;
  };

  it("refuses a key twice in one object however it is spelled, and never a line without one", async () => {
    const once = [
      String.raw`{"kind":"omitted","sequence":1,"contentHash":"a\":\"b","chainHash":"c\\"}`,
      String.raw`{"kind" : "omitted" , "sequence" :1,"contentHash":":","chainHash":"\\\":"}`,
      String.raw`{"kind":"event","data":{"a":{"a":1},"b":[{"a":1},{"a":2}],"a\"b":"\"a\":"},"__proto__":1}`,
    ];
    for (const line of once) expect(await read(line + "\n"), line).toEqual([expect.not.objectContaining({ kind: "malformed" })]);
    const twice = [
      String.raw`{"kind":"omitted","sequence":1,"sequence":2}`,
      String.raw`{"kind":"omitted","\u0073equence":1,"sequence":2}`,
      String.raw`{"kind":"event","data":{"a":1,"b":{"c":1,"c":1}}}`,
      String.raw`{"kind":"event","data":[{"a":1,"a":2}]}`,
      String.raw`{"kind":"event","a\"b":1,"a\"b":2}`,
      String.raw`{"kind":"event","__proto__":1,"__proto__":2}`,
    ];
    for (const line of twice)
      expect(await read(line + "\n"), line).toEqual([expect.objectContaining({ kind: "malformed", message: expect.stringMatching(/twice/) })]);
  });

  it("refuses a line that is not UTF-8", async () => {
    const line = Buffer.concat([Buffer.from('{"kind":"omitted","sequence":1,"contentHash":"'), Buffer.from([0xff]), Buffer.from('","chainHash":"c"}\n')]);
    expect(await read(line)).toEqual([{ kind: "malformed", line: 1, message: "not UTF-8 text" }]);
  });
});

// The auditor's specification must stay true: its worked example is a real export, verified here by
// the verifier, and every value it shows is recomputed from the code (and, for the hashes, from
// node:crypto alone, as the document describes them).
describe("docs/audit-format.md", () => {
  const doc = readFileSync(new URL("../../docs/audit-format.md", import.meta.url), "utf8");
  /** The fenced block whose info string names it (```json example-jwks). */
  const block = (name: string): string => {
    const found = new RegExp("```\\w+ " + name + "\\n([\\s\\S]*?)\\n```").exec(doc);
    if (!found) throw new Error(`docs/audit-format.md has no block ${name}`);
    return found[1]!;
  };
  const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
  const decoded = (jws: string, part: 0 | 1) => JSON.parse(Buffer.from(jws.split(".")[part]!, "base64url").toString("utf8")) as unknown;

  it("has a worked example that verifies, with the content, canonical JSON and hashes the code computes", async () => {
    const file = block("example-export");
    const report = await verifyAuditRecords(readExportRecords(Readable.from([file + "\n"])), {
      source: "export",
      keys: JSON.parse(block("example-jwks")) as JSONWebKeySet,
    });
    expect(report).toMatchObject({
      ok: true,
      tenantId: "acme",
      startsFrom: "genesis",
      lastSequence: 3,
      events: 3,
      omitted: 0,
      checkpoints: 1,
      signatures: "verified",
    });

    const records = file.split("\n").map((line) => JSON.parse(line) as ExportRecord);
    const [first, second, third] = records.filter((r): r is EventRecord => r.kind === "event") as [EventRecord, EventRecord, EventRecord];
    const content = JSON.parse(block("example-content")) as EventRecord;
    const { kind: _kind, sequence: _sequence, contentHash: _content, chainHash: _chain, audit: _audit, ...thirdContent } = third;
    expect(content).toEqual(thirdContent);
    expect(block("example-canonical")).toBe(canonicalJson(content));

    const hashes = Object.fromEntries(
      block("example-hashes")
        .split("\n")
        .map((line) => /^([a-z ]+):\s+(\S+)$/.exec(line)!.slice(1)),
    );
    expect(hashes["genesis input"]).toBe("keyplane:genesis:acme");
    expect(hashes.genesis).toBe(genesisHash("acme"));
    expect(hashes.genesis).toBe(sha256(hashes["genesis input"]!));
    expect(hashes["content hash"]).toBe(contentHash(content));
    expect(hashes["content hash"]).toBe(sha256(block("example-canonical")));
    expect(hashes["content hash"]).toBe(third.contentHash);
    expect(hashes["chain input"]).toBe(`${second.chainHash}:3:${third.contentHash}`);
    expect(hashes["chain hash"]).toBe(chainHash(second.chainHash, 3, third.contentHash));
    expect(hashes["chain hash"]).toBe(sha256(hashes["chain input"]!));
    expect(hashes["chain hash"]).toBe(third.chainHash);
    expect(doc).toContain(`\`${genesisHash("acme")}:1:${first.contentHash}\``);
    expect(third.audit).toEqual(deriveAuditFields(third));

    const checkpoint = records.find((r): r is CheckpointRecord => r.kind === "checkpoint")!;
    const end = records.at(-1) as EndRecord;
    expect(JSON.parse(block("example-checkpoint-header"))).toEqual(decoded(checkpoint.jws, 0));
    expect(JSON.parse(block("example-checkpoint-payload"))).toEqual(decoded(checkpoint.jws, 1));
    expect(JSON.parse(block("example-end-header"))).toEqual(decoded(end.jws, 0));
    expect(JSON.parse(block("example-end-payload"))).toEqual(decoded(end.jws, 1));
  });

  it("describes every field the verifier holds each line to", () => {
    const fields = [
      ...Object.values(LINE_FIELDS).flat(),
      ...Object.values(ANCHOR_FIELDS).flat(),
      ...Object.keys(deriveAuditFields({ occurredAt: "", type: "", tenantId: "", streamType: "", data: {}, metadata: {} })),
    ];
    const end = JSON.parse(block("example-end-payload")) as object;
    for (const field of [...fields, ...Object.keys(end)]) expect(doc, field).toContain(`\`${field}\``);
    expect(doc).toContain(`# The audit export format (version ${EXPORT_VERSION})`);
    expect(doc).toContain(CHECKPOINT_JWS_TYPE);
    expect(doc).toContain(EXPORT_JWS_TYPE);
  });
});
