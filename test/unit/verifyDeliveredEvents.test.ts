import { generateKeyPairSync, randomUUID } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, type JSONWebKeySet } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createAuditSigner, type AuditSigner } from "../../src/audit/auditSignatures.ts";
import { CHECKPOINT_JWS_TYPE, signatureOf, type CheckpointRecord, type EventRecord } from "../../src/audit/exportFormat.ts";
import { chainHash, contentHash, genesisHash, type HashedContent } from "../../src/audit/hashing.ts";
import {
  checkpointOfJson,
  verifyDeliveredEvents,
  verifyDeliveredInputs,
  type DeliveredCheckpoint,
  type DeliveredProblemKind,
  type DeliveredVerificationReport,
  type VerifyDeliveredOptions,
} from "../../src/audit/verifyDeliveredEvents.ts";
import { parseAuditArgs } from "../../src/cli/auditArgs.ts";
import { UsageError } from "../../src/cli/command.ts";
import { buildRequest, type Batch } from "../../src/logStreams/destinations.ts";
import { newWebhookSecret } from "../fakes/logReceivers.ts";

// What a receiver of a log stream holds, built with the real hashing, a real ES256 key and the
// deliverer's own request builder (destinations.ts), checked as `keyplane audit verify-stream`
// checks it: at-least-once repeats tolerated, and every kind of tampering named at its sequence.

const ACME = "acme";
const GLOBEX = "globex";

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

/** A word no message may repeat: it stands in every event's data. */
const SECRET_WORD = "do-not-print-me";

function content(tenantId: string, sequence: number, data: Record<string, unknown> = { n: sequence, note: SECRET_WORD }): HashedContent {
  return {
    eventId: randomUUID(),
    tenantId,
    streamType: "thing",
    streamId: `thing-${sequence}`,
    streamVersion: 1,
    type: sequence % 5 === 0 ? "auth.failed" : "thing.happened",
    schemaVersion: 1,
    data,
    metadata: { actor: { subject: "alice", kind: "user", roles: ["admin"] }, requestId: `r-${sequence}` },
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
  };
}

/** A tenant's genuine log of n events, as eventRecordOf gives them (no audit fields). */
function genuineLog(tenantId: string, n: number): EventRecord[] {
  const rows: EventRecord[] = [];
  let chain = genesisHash(tenantId);
  for (let s = 1; s <= n; s++) {
    const c = content(tenantId, s);
    const hash = contentHash(c);
    chain = chainHash(chain, s, hash);
    rows.push({ kind: "event", ...c, sequence: s, contentHash: hash, chainHash: chain });
  }
  return rows;
}

/** Keyplane's checkpoints at the given sequences of the log, linked as the signer links them. */
async function checkpointsOf(rows: EventRecord[], at: number[], signer = keyplane.signer): Promise<CheckpointRecord[]> {
  const out: CheckpointRecord[] = [];
  let previous: string | null = null;
  for (const s of at) {
    const row = rows[s - 1]!;
    const payload = { tenantId: row.tenantId, sequence: s, chainHash: row.chainHash, previousSignature: previous, signedAt: "2026-01-01T01:00:00.000Z" };
    const jws = await signer.sign(CHECKPOINT_JWS_TYPE, payload);
    out.push({ kind: "checkpoint", sequence: s, chainHash: row.chainHash, previousSignature: previous, signedAt: payload.signedAt, kid: signer.kid, jws });
    previous = signatureOf(jws);
  }
  return out;
}

/** What the GraphQL query auditCheckpoint answers: the checkpoint without its kind. */
const asQueried = ({ kind: _kind, ...c }: CheckpointRecord): DeliveredCheckpoint => c;

type Kind = "webhook" | "splunk" | "datadog";

/** The lines a receiver keeps of each request: the body as Keyplane sent it (Splunk's, one object a line). */
function delivered(kind: Kind, batches: EventRecord[][]): string[] {
  const secrets = { url: "https://receiver.example.com/hook", secret: kind === "webhook" ? newWebhookSecret() : "0123456789abcdef" };
  return batches.flatMap((events) => {
    const batch: Batch = { tenantId: events[0]!.tenantId, logStreamId: "ls-1", events };
    return buildRequest(kind, { index: "audit" }, secrets, batch, new Date()).body.split("\n");
  });
}

/** Batches of `size` from the rows, the way the deliverer cuts them. */
const batchesOf = (rows: EventRecord[], size = 10): EventRecord[][] =>
  Array.from({ length: Math.ceil(rows.length / size) }, (_, i) => rows.slice(i * size, (i + 1) * size));

const ndjson = (rows: object[]) => rows.map((r) => JSON.stringify(r));

async function verify(lines: string[], options: VerifyDeliveredOptions = {}): Promise<DeliveredVerificationReport> {
  const report = await verifyDeliveredEvents(lines, { keys: keyplane.jwks, ...options });
  // Never a word of what an event says.
  expect(JSON.stringify(report)).not.toContain(SECRET_WORD);
  return report;
}

/** The problems of the report, as kind@sequence (tenant problems and the others). */
const problemsOf = (report: DeliveredVerificationReport) =>
  [...report.problems, ...report.tenants.flatMap((t) => t.problems)].map((p) => `${p.kind}@${p.sequence}`);

async function expectProblems(lines: string[], options: VerifyDeliveredOptions, expected: Array<`${DeliveredProblemKind}@${number | null}`>) {
  const report = await verify(lines, options);
  expect(problemsOf(report)).toEqual(expected);
  expect(report.ok).toBe(false);
  return report;
}

const edit = (rows: EventRecord[], sequence: number, change: (r: EventRecord) => EventRecord) => rows.map((r) => (r.sequence === sequence ? change(r) : r));
/** The record with other data and the content hash recomputed for it (its chain hash left as it was). */
function rehashed(r: EventRecord, data: Record<string, unknown>): EventRecord {
  const { kind: _k, sequence: _s, contentHash: _c, chainHash: _h, ...c } = { ...r, data };
  return { ...r, data, contentHash: contentHash(c) };
}

/** A forger's log: from `from` on, the content hashes and the chain recomputed. */
function rechained(rows: EventRecord[], from: number): EventRecord[] {
  let chain = from === 1 ? genesisHash(rows[0]!.tenantId) : rows[from - 2]!.chainHash;
  return rows.map((r) => {
    if (r.sequence < from) return r;
    const { kind: _k, sequence: _s, contentHash: _c, chainHash: _h, ...c } = r;
    const hash = contentHash(c);
    chain = chainHash(chain, r.sequence, hash);
    return { ...r, contentHash: hash, chainHash: chain };
  });
}

describe("verifying what a log stream delivered", () => {
  it.each<Kind>(["webhook", "splunk", "datadog"])(
    "accepts an intact %s delivery with redelivered batches, and says what the checkpoint anchors",
    async (kind) => {
      const rows = genuineLog(ACME, 30);
      const checkpoints = await checkpointsOf(rows, [10, 25]);
      const [b1, b2, b3] = batchesOf(rows);
      // At least once: the first batch came twice, the second once more after the third.
      const lines = delivered(kind, [b1!, b1!, b2!, b3!, b2!]);
      const report = await verify(lines, { checkpoints: [asQueried(checkpoints[1]!)] });
      expect(report).toMatchObject({ ok: true, signatures: "verified", gaps: "refused", records: 50, skipped: 0, problems: [] });
      expect(report.tenants).toEqual([
        {
          tenantId: ACME,
          ok: true,
          firstSequence: 1,
          lastSequence: 30,
          events: 30,
          duplicates: 20,
          missing: 0,
          runs: 1,
          chainFrom: "genesis",
          unlinked: 0,
          checkpoints: [{ sequence: 25, outcome: "matched" }],
          anchoredThrough: 25,
          onlyChained: { from: 26, to: 30, events: 5 },
          problems: [],
          problemsNotListed: 0,
        },
      ]);
    },
  );

  it("reads bare records, saved request bodies (a JSON array of Datadog entries or of records) and Datadog entries one a line, mixed", async () => {
    const rows = genuineLog(ACME, 12);
    const [checkpoint] = await checkpointsOf(rows, [12]);
    const datadogBody = delivered("datadog", [rows.slice(4, 8)])[0]!;
    expect(datadogBody.startsWith("[")).toBe(true);
    const lines = [
      ...ndjson(rows.slice(0, 4)),
      datadogBody,
      ...(JSON.parse(delivered("datadog", [rows.slice(8, 10)])[0]!) as object[]).map((entry) => JSON.stringify(entry)),
      JSON.stringify(rows.slice(10)),
      "",
      ...delivered("splunk", [rows.slice(0, 3)]),
    ];
    const report = await verify(lines, { checkpoints: [checkpoint!] });
    expect(report.ok, JSON.stringify(problemsOf(report))).toBe(true);
    expect(report.tenants[0]).toMatchObject({ events: 12, duplicates: 3, anchoredThrough: 12, onlyChained: null });
  });

  it("does not care about the order of the lines (a SIEM's export comes newest first)", async () => {
    const rows = genuineLog(ACME, 20);
    const lines = delivered("splunk", batchesOf(rows)).reverse();
    const report = await verify(lines);
    expect(report.ok).toBe(true);
    expect(report.tenants[0]).toMatchObject({ firstSequence: 1, lastSequence: 20, chainFrom: "genesis", anchoredThrough: null });
  });

  it("names a modified event: its content changed, or content and content hash changed together", async () => {
    const rows = genuineLog(ACME, 20);
    const changed = edit(rows, 7, (r) => ({ ...r, data: { n: 700, note: SECRET_WORD } }));
    const report = await expectProblems(delivered("webhook", batchesOf(changed)), {}, ["modified@7"]);
    expect(report.tenants[0]!.problems[0]!.message).toMatch(/^input:1: the content of event 7 does not match its content hash [0-9a-f]{64}$/);
    const together = edit(rows, 7, (r) => rehashed(r, { n: 700, note: SECRET_WORD }));
    await expectProblems(delivered("datadog", batchesOf(together)), {}, ["modified@7"]);
    // Only the chain hash changed: the next event still chains from the true one.
    const chainChanged = edit(rows, 12, (r) => ({ ...r, chainHash: "0".repeat(64) }));
    await expectProblems(delivered("splunk", batchesOf(chainChanged)), {}, ["modified@12"]);
  });

  it("names a dropped event, or several, by the first missing sequence", async () => {
    const rows = genuineLog(ACME, 20);
    const report = await expectProblems(delivered("webhook", batchesOf(rows.filter((r) => r.sequence !== 12))), {}, ["missing@12"]);
    expect(report.tenants[0]).toMatchObject({ missing: 1, runs: 2 });
    expect(report.tenants[0]!.problems[0]!.message).toBe("event 12 was not received");
    const several = await expectProblems(ndjson(rows.filter((r) => r.sequence < 5 || r.sequence > 7 || r.sequence === 15)), {}, ["missing@5"]);
    expect(several.tenants[0]!.problems[0]!.message).toBe("events 5–7 were not received");
  });

  it("names a reordered pair when the sequences were swapped too (lines out of order are no finding)", async () => {
    const rows = genuineLog(ACME, 20);
    const swappedLines = [...rows];
    [swappedLines[7], swappedLines[8]] = [swappedLines[8]!, swappedLines[7]!];
    expect((await verify(ndjson(swappedLines))).ok).toBe(true);
    const renumbered = swappedLines.map((r, i) => ({ ...r, sequence: i + 1 }));
    await expectProblems(ndjson(renumbered), {}, ["reordered@8"]);
  });

  it("names an event removed or inserted with the events after it renumbered", async () => {
    const rows = genuineLog(ACME, 20);
    const removed = rows.filter((r) => r.sequence !== 9).map((r, i) => ({ ...r, sequence: i + 1 }));
    await expectProblems(ndjson(removed), {}, ["deleted@9"]);
    const forged = { ...rehashed(rows[8]!, { n: "forged" }), chainHash: "a".repeat(64) };
    const inserted = [...rows.slice(0, 8), forged, ...rows.slice(8)].map((r, i) => ({ ...r, sequence: i + 1 }));
    await expectProblems(ndjson(inserted), {}, ["inserted@9"]);
  });

  it("refuses two different records claiming one sequence, and follows the one that chains", async () => {
    const rows = genuineLog(ACME, 20);
    const forged = rehashed(rows[8]!, { n: "forged" });
    // The forged record first: the genuine one, later, is followed.
    const report = await expectProblems([...ndjson([forged]), ...delivered("webhook", batchesOf(rows))], {}, ["conflict@9"]);
    expect(report.tenants[0]!.problems[0]!.message).toBe("2 different records claim sequence 9 (input:1, input:2): at most one of them is Keyplane's");
  });

  it("refuses a forged checkpoint, and one saying other than it signs; without keys the signature is unchecked", async () => {
    const rows = genuineLog(ACME, 20);
    const lines = delivered("webhook", batchesOf(rows));
    const [forged] = await checkpointsOf(rows, [15], mallory.signer);
    const report = await expectProblems(lines, { checkpoints: [forged!] }, ["checkpoint-signature@15"]);
    expect(report.tenants[0]!.problems[0]!.message).toMatch(/^the checkpoint at 15 is forged: no key .* in the JWKS$/);
    const [genuine] = await checkpointsOf(rows, [15]);
    await expectProblems(lines, { checkpoints: [{ ...genuine!, sequence: 14, chainHash: rows[13]!.chainHash }] }, ["checkpoint-signature@15"]);
    const at = genuine!.jws.lastIndexOf(".") + 10;
    const badSignature = genuine!.jws.slice(0, at) + (genuine!.jws[at] === "A" ? "B" : "A") + genuine!.jws.slice(at + 1);
    await expectProblems(lines, { checkpoints: [{ ...genuine!, jws: badSignature }] }, ["checkpoint-signature@15"]);
    const unchecked = await verifyDeliveredEvents(lines, { checkpoints: [forged!] });
    expect(unchecked).toMatchObject({ ok: true, signatures: "unchecked" });
    // Only the JWS is needed: it signs every field.
    expect((await verify(lines, { checkpoints: [{ jws: genuine!.jws }] })).tenants[0]!.anchoredThrough).toBe(15);
  });

  it("names events rewritten with recomputed hashes by the checkpoint that no longer matches", async () => {
    const rows = genuineLog(ACME, 30);
    const checkpoints = await checkpointsOf(rows, [10, 25]);
    const forged = rechained(
      edit(rows, 21, (r) => ({ ...r, data: { n: "rewritten" } })),
      21,
    );
    // The chain holds (the forger recomputed it); only Keyplane's signature shows it.
    expect((await verify(ndjson(forged))).ok).toBe(true);
    const report = await expectProblems(ndjson(forged), { checkpoints }, ["checkpoint-mismatch@11"]);
    expect(report.tenants[0]!.problems[0]!.message).toMatch(
      /^the chain hash at 25 is [0-9a-f]{64}, not the one Keyplane signed \([0-9a-f]{64}\): events 11–25 were rewritten with recomputed hashes, or are not Keyplane's$/,
    );
    expect(report.tenants[0]).toMatchObject({
      checkpoints: [
        { sequence: 10, outcome: "matched" },
        { sequence: 25, outcome: "mismatch" },
      ],
      anchoredThrough: 10,
    });
  });

  it("with --require-checkpoint, refuses events that end before the checkpoint (a cut tail)", async () => {
    const rows = genuineLog(ACME, 30);
    const [checkpoint] = await checkpointsOf(rows, [25]);
    const cut = delivered("datadog", batchesOf(rows.slice(0, 20)));
    const lenient = await verify(cut, { checkpoints: [checkpoint!] });
    expect(lenient.ok).toBe(true);
    expect(lenient.tenants[0]).toMatchObject({ checkpoints: [{ sequence: 25, outcome: "after" }], anchoredThrough: null, onlyChained: { from: 1, to: 20 } });
    const strict = await expectProblems(cut, { checkpoints: [checkpoint!], requireCheckpoint: true }, ["truncated@21"]);
    expect(strict.tenants[0]!.problems[0]!.message).toBe("the events end at 20, before the checkpoint at 25: events 21–25 were not received");
    expect((await verify(delivered("datadog", batchesOf(rows.slice(0, 25))), { checkpoints: [checkpoint!], requireCheckpoint: true })).ok).toBe(true);
  });

  it("verifies two tenants interleaved, each against its own checkpoint, and one tenant alone when asked", async () => {
    const acme = genuineLog(ACME, 30);
    const globex = genuineLog(GLOBEX, 15);
    const [acmeCheckpoint] = await checkpointsOf(acme, [30]);
    const [globexCheckpoint] = await checkpointsOf(globex, [12]);
    const a = delivered("webhook", batchesOf(acme, 5));
    const g = delivered("webhook", batchesOf(globex, 5));
    const lines = a.flatMap((line, i) => [line, ...(g[i] ? [g[i]!] : [])]);
    const report = await verify(lines, { checkpoints: [acmeCheckpoint!, globexCheckpoint!] });
    expect(report.ok).toBe(true);
    expect(report.tenants.map((t) => [t.tenantId, t.events, t.anchoredThrough])).toEqual([
      [ACME, 30, 30],
      [GLOBEX, 15, 12],
    ]);
    // Tenant chains never mix: globex's events do not continue acme's.
    const mixed = lines.map((line) => line.replaceAll(`"tenantId":"${GLOBEX}"`, `"tenantId":"${ACME}"`));
    expect((await verify(mixed)).ok).toBe(false);
    const alone = await verify(lines, { tenantId: GLOBEX, checkpoints: [globexCheckpoint!] });
    expect(alone).toMatchObject({ ok: true, skipped: 30 });
    expect(alone.tenants.map((t) => t.tenantId)).toEqual([GLOBEX]);
    // A checkpoint of another tenant than the one asked for is refused.
    await expectProblems(lines, { tenantId: GLOBEX, checkpoints: [acmeCheckpoint!] }, ["checkpoint-signature@30"]);
    // A checkpoint of a tenant whose events are not there.
    await expectProblems(a, { checkpoints: [globexCheckpoint!] }, ["missing@null"]);
  });

  it("verifies a stream that starts mid-log: the chain from its second event, or from a checkpoint right before it", async () => {
    const rows = genuineLog(ACME, 80);
    const checkpoints = await checkpointsOf(rows, [49, 70]);
    const replayed = delivered("splunk", batchesOf(rows.slice(49)));
    const report = await verify(replayed, { checkpoints: [checkpoints[1]!] });
    expect(report.ok).toBe(true);
    expect(report.tenants[0]).toMatchObject({
      firstSequence: 50,
      lastSequence: 80,
      chainFrom: "first-event",
      unlinked: 1,
      anchoredThrough: 70,
      onlyChained: { from: 71, to: 80, events: 10 },
    });
    const fromCheckpoint = await verify(replayed, { checkpoints });
    expect(fromCheckpoint.tenants[0]).toMatchObject({
      chainFrom: "checkpoint",
      unlinked: 0,
      checkpoints: [
        { sequence: 49, outcome: "chain-start" },
        { sequence: 70, outcome: "matched" },
      ],
    });
    // The first event replaced: only the checkpoint right before it can tell.
    const firstForged = replayed.map((line, i) => (i === 0 ? line.replace(/"n":50/, '"n":5000') : line));
    expect((await verify(firstForged)).ok).toBe(false); // (its content hash)
    // Its content and content hash replaced together: its chain hash is where the chain starts, so
    // even the checkpoint at 70 cannot tell (the stream's first event is not anchored)...
    const replacedFirst = ndjson(edit(rows.slice(49), 50, (r) => rehashed(r, { n: 5000 })));
    expect((await verify(replacedFirst, { checkpoints: [checkpoints[1]!] })).ok).toBe(true);
    // ...only a checkpoint right before it.
    await expectProblems(replacedFirst, { checkpoints }, ["modified@50"]);
  });

  it("refuses the gaps of a filtered stream unless they are allowed, then checks what it can", async () => {
    const rows = genuineLog(ACME, 40);
    const checkpoints = await checkpointsOf(rows, [12, 20, 33]);
    // A stream of one type: every fifth event (auth.failed) left out.
    const filtered = rows.filter((r) => r.type === "thing.happened");
    const lines = delivered("webhook", batchesOf(filtered));
    const refused = await verify(lines, { checkpoints });
    expect(problemsOf(refused)).toEqual(["missing@5", "missing@10", "missing@15", "missing@20", "missing@25", "missing@30", "missing@35"]);
    const allowed = await verify(lines, { checkpoints, allowGaps: true });
    expect(allowed).toMatchObject({ ok: true, gaps: "allowed" });
    expect(allowed.tenants[0]).toMatchObject({
      events: 32,
      missing: 7,
      runs: 8,
      // (the first event of each run is linked only after genesis or a checkpoint: 1 and 21)
      unlinked: 6,
      checkpoints: [
        { sequence: 12, outcome: "matched" },
        { sequence: 20, outcome: "chain-start" },
        { sequence: 33, outcome: "matched" },
      ],
      anchoredThrough: 33,
      onlyChained: { from: 34, to: 39, events: 5 },
    });
    // Within a run the chain is still checked.
    const changed = rows.map((r) => (r.sequence === 17 ? { ...r, chainHash: "b".repeat(64) } : r)).filter((r) => r.type === "thing.happened");
    await expectProblems(ndjson(changed), { allowGaps: true }, ["modified@17"]);
  });

  it("names lines that are not delivered events by file and line, without repeating them", async () => {
    const rows = genuineLog(ACME, 3);
    const report = await verifyDeliveredInputs(
      [
        { name: "a.ndjson", lines: [...ndjson(rows), `{"note":"${SECRET_WORD}"`] },
        {
          name: "b.ndjson",
          lines: [`{"kind":"event","note":"${SECRET_WORD}"}`, `{"message":"${SECRET_WORD}"}`, `{"type":"keyplane.audit_events","type":"x","events":[]}`],
        },
      ],
      { keys: keyplane.jwks },
    );
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.message)).toEqual([
      "a.ndjson:4: not JSON",
      "b.ndjson:1: an event record without a tenant or a sequence",
      "b.ndjson:2: a Datadog entry whose message is not JSON",
      "b.ndjson:3: a key appears twice in one object (readers differ on which value counts)",
    ]);
    expect(JSON.stringify(report)).not.toContain(SECRET_WORD);
    // A record with a field more is malformed at its sequence (and not reported missing too).
    const extra = ndjson(rows.map((r) => (r.sequence === 2 ? { ...r, extra: 1 } : r)));
    await expectProblems(extra, {}, ["malformed@2"]);
    // Nothing at all is no proof of anything.
    await expectProblems([], {}, ["missing@null"]);
  });

  it("reads a checkpoint as the auditCheckpoint query answers it", async () => {
    const [checkpoint] = await checkpointsOf(genuineLog(ACME, 3), [3]);
    const queried = asQueried(checkpoint!);
    expect(checkpointOfJson(JSON.stringify(queried))).toEqual(queried);
    expect(checkpointOfJson(JSON.stringify({ data: { auditCheckpoint: { __typename: "AuditCheckpoint", ...queried } } }))).toEqual(queried);
    expect(checkpointOfJson(JSON.stringify(checkpoint))).toEqual(checkpoint);
    expect(() => checkpointOfJson(JSON.stringify({ data: { auditCheckpoint: null } }))).toThrow(/no checkpoint/);
    expect(() => checkpointOfJson(JSON.stringify({ ...queried, tenant: "x" }))).toThrow(/a field "tenant"/);
    expect(() => checkpointOfJson("{")).toThrow("not JSON");
    expect(() => checkpointOfJson(JSON.stringify({ errors: [{ message: "no" }] }))).toThrow(/errors/);
  });

  it("parses the command line of keyplane audit verify-stream", () => {
    expect(parseAuditArgs("verify-stream", ["a.ndjson", "b.ndjson", "--checkpoint", "cp.json", "--jwks", "jwks.json", "--require-checkpoint"])).toEqual({
      command: "verify-stream",
      files: ["a.ndjson", "b.ndjson"],
      checkpoints: ["cp.json"],
      jwks: "jwks.json",
      json: false,
      requireCheckpoint: true,
      allowGaps: false,
    });
    expect(parseAuditArgs("verify-stream", ["-", "--checkpoint", "cp.json", "--tenant", "acme", "--json", "--allow-gaps"])).toMatchObject({
      tenantId: "acme",
      json: true,
      allowGaps: true,
    });
    expect(() => parseAuditArgs("verify-stream", ["--checkpoint", "cp.json"])).toThrow(UsageError);
    expect(() => parseAuditArgs("verify-stream", ["a.ndjson"])).toThrow(/--checkpoint/);
    expect(() => parseAuditArgs("verify-stream", ["-", "--checkpoint", "-"])).toThrow(/stdin once/);
  });
});
