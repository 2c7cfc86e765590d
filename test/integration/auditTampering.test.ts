import { generateKeyPairSync, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { sql } from "kysely";
import type { JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signCheckpoint } from "../../src/app/audit/signCheckpoint.ts";
import { createAuditSigner } from "../../src/audit/auditSignatures.ts";
import {
  CHECKPOINT_JWS_TYPE,
  csvField,
  deriveAuditFields,
  type CheckpointPayload,
  type CheckpointRecord,
  type EventRecord,
  type HeaderRecord,
} from "../../src/audit/exportFormat.ts";
import { readExportRecords } from "../../src/audit/node/readExportFile.ts";
import { parseCsvRecord } from "../../src/audit/readCsvRecord.ts";
import { verifyAuditRecords, type ProblemKind } from "../../src/audit/verifyAuditRecords.ts";
import { verifyExportFile } from "../../src/audit/node/verifyExportFile.ts";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { openDatabase, withPlatform, withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { chainHash, contentHash } from "../../src/audit/hashing.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type TestApp } from "../testkit/testApp.ts";
import { adminUrlOf, onCitus } from "../testkit/testDatabase.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Tampering, as an insider would: with an export file in hand, and with the database rows
// themselves (as a superuser, triggers off). The verifier must name the first bad sequence every
// time, and Keyplane must never sign a checkpoint over a chain that does not verify.

let app: TestApp;
let jwks: JSONWebKeySet;

beforeAll(async () => {
  app = await createTestApp({ name: "audit-tampering" });
  jwks = (await (await fetch(`${app.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
});
afterAll(async () => {
  await app?.close();
});

const checkpointDeps = () => ({ ...app.kp.deps, jwks: app.kp.deps.verifier.jwks });

/** A tenant with 40 events (5 from seeding, 35 appended) and a signed checkpoint at 20. */
async function tenantWithLog(): Promise<{ tenantId: string; admin: string }> {
  const seeded = await app.seedTenant();
  const { tenantId } = seeded;
  const append = (count: number) =>
    withTenant(app.database.db, tenantId, (trx) =>
      appendEvents(trx, {
        tenantId,
        streamType: "bulk",
        streamId: randomUUID(),
        expectedVersion: 0,
        events: Array.from({ length: count }, (_, i) => AccessDenied({ level: "warning", status: "denied", reason: "tamper-test", details: { i } })),
        metadata: eventMetadata(systemActor("tamper-test", tenantId)),
        occurredAt: new Date(),
      }),
    );
  await append(15);
  expect(await signCheckpoint(checkpointDeps(), tenantId)).toMatchObject({ outcome: "signed", checkpoint: { sequence: 20 } });
  await append(20);
  return { tenantId, admin: seeded.tokens.admin };
}

async function exportText(token: string, query = ""): Promise<string> {
  const res = await fetch(`${app.url}/audit/export${query}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return res.text();
}

/** The report on an export's text; `keyplane audit verify` (verifyExportFile, one core and two threads) must give the same. */
async function verifyText(text: string, keys: JSONWebKeySet = jwks) {
  const report = await verifyAuditRecords(readExportRecords(Readable.from([text])), { source: "export", keys });
  for (const threads of [1, 2])
    expect(await verifyExportFile(Readable.from([text]), { keys, threads, batchBytes: 2048 }), `threads: ${threads}`).toEqual(report);
  return report;
}

async function expectFileProblem(text: string, kind: ProblemKind, sequence: number | null) {
  const report = await verifyText(text);
  expect({ ok: report.ok, kind: report.problem?.kind, sequence: report.problem?.sequence }, report.problem?.message).toEqual({ ok: false, kind, sequence });
}

async function expectLogProblem(token: string, kind: ProblemKind, sequence: number | null) {
  const res = await app.gql("{ verifyAuditLog { ok problem { kind sequence message } } }", {}, { token });
  expect(res.errors).toBeUndefined();
  const { ok, problem } = res.data.verifyAuditLog;
  expect({ ok, kind: problem?.kind, sequence: problem?.sequence }, problem?.message).toEqual({
    ok: false,
    kind: kind.toUpperCase().replace(/-/g, "_"),
    sequence,
  });
}

/**
 * Rewrites rows as a superuser would: triggers (the append-only guard) off for the transaction. On
 * Citus over a superuser connection of its own (Keyplane's role may not turn triggers off), whose SET
 * LOCAL reaches the worker holding the rows.
 */
const tamper = async (statements: (trx: Parameters<Parameters<typeof withPlatform>[1]>[0]) => Promise<unknown>) => {
  const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(app.database.db);
  const superuser = onCitus ? await openDatabase({ url: adminUrlOf(rows[0]!.name), poolMax: 1 }) : app.database;
  try {
    await withPlatform(superuser.db, async (trx) => {
      await sql`set local session_replication_role = replica`.execute(trx);
      await statements(trx);
    });
  } finally {
    if (superuser !== app.database) await superuser.close();
  }
};

const lineIndex = (lines: string[], kind: string, sequence: number) => lines.findIndex((l) => l.startsWith(`{"kind":"${kind}","sequence":${sequence},`));

describe("tampering with an export file", () => {
  let text: string;
  let lines: string[];
  let admin: string;
  beforeAll(async () => {
    ({ admin } = await tenantWithLog());
    text = await exportText(admin);
    lines = text.trimEnd().split("\n");
    expect((await verifyText(text)).ok).toBe(true);
  });
  const file = (edited: string[]) => edited.join("\n") + "\n";
  /** The file with the line at `index` replaced. */
  const replaced = (index: number, line: string) => file(lines.map((l, j) => (j === index ? line : l)));

  it("names a modified event", async () => {
    const i = lineIndex(lines, "event", 12);
    await expectFileProblem(file(lines.map((l, j) => (j === i ? l.replace('"reason": "tamper-test"', '"reason": "nothing to see"') : l))), "modified", 12);
    // Content and content hash edited together (the chain hash left alone).
    const { kind: _k, sequence: _s, contentHash: _c, chainHash: _h, audit: _a, ...content } = JSON.parse(lines[i]!) as EventRecord;
    const rehashed = { ...(JSON.parse(lines[i]!) as EventRecord), metadata: { ...(content.metadata as object), sourceIp: "203.0.113.9" } };
    rehashed.contentHash = contentHash({ ...content, metadata: rehashed.metadata });
    await expectFileProblem(file(lines.map((l, j) => (j === i ? JSON.stringify(rehashed) : l))), "modified", 12);
    // The audit fields are derived from the content: edited alone, they are caught too.
    await expectFileProblem(file(lines.map((l, j) => (j === i ? l.replace('"userId":"tamper-test"', '"userId":"alice"') : l))), "modified", 12);
  });

  it("names a deleted event", async () => {
    await expectFileProblem(file(lines.filter((_, j) => j !== lineIndex(lines, "event", 30))), "deleted", 30);
  });

  it("names an inserted event", async () => {
    const i = lineIndex(lines, "event", 25);
    const copy = JSON.parse(lines[i - 1]!) as EventRecord;
    const forged = { ...copy, eventId: randomUUID(), data: { ...(copy.data as object), reason: "forged" } };
    // The copy still claims 24: two lines claiming one sequence is the finding, at that sequence.
    await expectFileProblem(file([...lines.slice(0, i), JSON.stringify(forged), ...lines.slice(i)]), "inserted", 24);
  });

  it("names reordered events", async () => {
    const i = lineIndex(lines, "event", 33);
    await expectFileProblem(file([...lines.slice(0, i), lines[i + 1]!, lines[i]!, ...lines.slice(i + 2)]), "reordered", 33);
  });

  it("names a cut tail", async () => {
    await expectFileProblem(file(lines.slice(0, -5)), "truncated", 37);
  });

  it("names a forged checkpoint: edited, or signed with a key Keyplane does not publish", async () => {
    const i = lineIndex(lines, "checkpoint", 20);
    const checkpoint = JSON.parse(lines[i]!) as { chainHash: string; previousSignature: string | null };
    await expectFileProblem(file(lines.map((l, j) => (j === i ? l.replace(checkpoint.chainHash, "0".repeat(64)) : l))), "checkpoint-signature", 20);
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const mallory = createAuditSigner({ kid: "mallory", privateKey });
    const payload: CheckpointPayload = {
      tenantId: (JSON.parse(lines[0]!) as { tenantId: string }).tenantId,
      sequence: 20,
      chainHash: checkpoint.chainHash,
      previousSignature: null,
      signedAt: new Date().toISOString(),
    };
    const forged = { kind: "checkpoint", ...payload, kid: "mallory", jws: await mallory.sign(CHECKPOINT_JWS_TYPE, payload) };
    const { tenantId: _t, ...line } = forged;
    await expectFileProblem(file(lines.map((l, j) => (j === i ? JSON.stringify(line) : l))), "checkpoint-signature", 20);
  });
  it("refuses a checkpoint line saying anything its JWS does not sign: signedAt, kid, a field more", async () => {
    const i = lineIndex(lines, "checkpoint", 20);
    const checkpoint = JSON.parse(lines[i]!) as CheckpointRecord;
    for (const line of [
      { ...checkpoint, signedAt: "2020-01-01T00:00:00.000Z" },
      { ...checkpoint, kid: "mallory" },
      { ...checkpoint, note: "checked" },
    ]) {
      await expectFileProblem(replaced(i, JSON.stringify(line)), "checkpoint-signature", 20);
    }
  });

  it("refuses a partial export whose header anchor says anything its JWS does not sign", async () => {
    const partial = (await exportText(admin, "?fromSequence=25")).trimEnd().split("\n");
    const header = JSON.parse(partial[0]!) as HeaderRecord;
    expect(header.anchor).toMatchObject({ type: "checkpoint", sequence: 20 });
    expect((await verifyText(file(partial))).ok).toBe(true);
    for (const anchor of [
      { ...header.anchor, signedAt: "2020-01-01T00:00:00.000Z" },
      { ...header.anchor, kid: "mallory" },
      { ...header.anchor, note: "checked" },
    ]) {
      await expectFileProblem(file([JSON.stringify({ ...header, anchor }), ...partial.slice(1)]), "header", 20);
    }
    // A stub between the anchor and the range holds exactly its fields too.
    const stub = partial.findIndex((l) => l.startsWith('{"kind":"omitted","sequence":22,'));
    await expectFileProblem(
      file(partial.map((l, j) => (j === stub ? l.replace('{"kind":"omitted",', '{"kind":"omitted","type":"access.denied",') : l))),
      "malformed",
      22,
    );
  });

  it("names two lines claiming one sequence: a forged line chained to fit, before or after the genuine one", async () => {
    const i = lineIndex(lines, "event", 25);
    const genuine = JSON.parse(lines[i]!) as EventRecord;
    const before = JSON.parse(lines[lineIndex(lines, "event", 24)]!) as EventRecord;
    const { kind: _k, sequence: _s, contentHash: _c, chainHash: _h, audit: _a, ...content } = genuine;
    const data = { ...(genuine.data as object), reason: "nothing happened" };
    const forgedContent = contentHash({ ...content, data });
    const forged = JSON.stringify({
      ...genuine,
      data,
      contentHash: forgedContent,
      chainHash: chainHash(before.chainHash, 25, forgedContent),
      audit: deriveAuditFields({ ...genuine, data }),
    });
    await expectFileProblem(file([...lines.slice(0, i), forged, ...lines.slice(i)]), "inserted", 25);
    await expectFileProblem(file([...lines.slice(0, i + 1), forged, ...lines.slice(i + 1)]), "inserted", 25);
  });

  it("refuses an event line that is not exactly the listed fields, and duplicate keys", async () => {
    const i = lineIndex(lines, "event", 12);
    const line = lines[i]!;
    const { audit: _audit, ...withoutAudit } = JSON.parse(line) as EventRecord;
    await expectFileProblem(replaced(i, JSON.stringify({ ...JSON.parse(line), actor: "alice" })), "malformed", 12);
    await expectFileProblem(replaced(i, JSON.stringify(withoutAudit)), "malformed", 12);
    // JSON.parse keeps a repeated key's last value (the genuine one here); a reader keeping the first reads the forged one.
    await expectFileProblem(replaced(i, line.replace('{"kind":"event",', '{"kind":"event","type":"tenant.created",')), "malformed", 12);
    await expectFileProblem(replaced(i, line.replace('"data":{', '"data":{"reason": "nothing happened", ')), "malformed", 12);
    await expectFileProblem(replaced(i, line.replace('"audit":{', '"audit":{"userId":"alice",')), "malformed", 12);
    // The audit object holds exactly the 11 fields derived from the content: an actor is not one of them.
    await expectFileProblem(replaced(i, line.replace('"audit":{', '"audit":{"actor":"alice",')), "modified", 12);
    // The header holds exactly its fields too.
    await expectFileProblem(file([lines[0]!.replace('{"kind":"header",', '{"kind":"header","note":"checked",'), ...lines.slice(1)]), "header", null);
  });

  it("names an event replaced by its stub, and a dropped last checkpoint, at their sequences", async () => {
    const i = lineIndex(lines, "event", 12);
    const { contentHash: content, chainHash: chain } = JSON.parse(lines[i]!) as EventRecord;
    await expectFileProblem(replaced(i, JSON.stringify({ kind: "omitted", sequence: 12, contentHash: content, chainHash: chain })), "modified", 12);
    await expectFileProblem(file(lines.filter((_, j) => j !== lineIndex(lines, "checkpoint", 20))), "checkpoint-link", 20);
  });
});

describe("tampering with a CSV export file", () => {
  let rows: string[];
  beforeAll(async () => {
    const { admin } = await tenantWithLog();
    const text = await exportText(admin, "?format=csv");
    rows = text.trimEnd().split("\n");
    expect((await verifyText(text)).ok).toBe(true);
  });
  const file = (edited: string[]) => edited.join("\n") + "\n";
  const rowIndex = (kind: string, sequence: number) => rows.findIndex((r) => r.startsWith(`${kind},${sequence},`));
  /** The file with one cell of a row replaced (written as the export writes cells). */
  const withCell = (index: number, column: number, value: string) => {
    const cells = parseCsvRecord(rows[index]!)!;
    cells[column] = value;
    return file(rows.map((r, j) => (j === index ? cells.map((c) => (c === "" ? "" : csvField(c))).join(",") : r)));
  };
  const column = (name: string) => parseCsvRecord(rows[0]!)!.indexOf(name);
  const cellOf = (index: number, name: string) => parseCsvRecord(rows[index]!)![column(name)]!;

  it("goes through the same verifier as NDJSON: an edited checkpoint signedAt, a stub for an event", async () => {
    const c = rowIndex("checkpoint", 20);
    const record = JSON.parse(cellOf(c, "record")) as CheckpointRecord;
    await expectFileProblem(withCell(c, column("record"), JSON.stringify({ ...record, signedAt: "2020-01-01T00:00:00.000Z" })), "checkpoint-signature", 20);
    const e = rowIndex("event", 12);
    const stub = ["omitted", "12", ...Array(10).fill(""), cellOf(e, "contentHash"), cellOf(e, "chainHash"), "", ""].join(",");
    await expectFileProblem(file(rows.map((r, j) => (j === e ? stub : r))), "modified", 12);
  });

  it("refuses cells nobody reads: an extra column, a filled record cell, a repeated cell that disagrees", async () => {
    await expectFileProblem(file(rows.map((r, j) => (j === 0 ? `${r},note` : `${r},`))), "header", null);
    const e = rowIndex("event", 12);
    await expectFileProblem(withCell(e, column("record"), '{"kind":"event","note":"checked"}'), "malformed", 12);
    await expectFileProblem(withCell(e, column("audit"), ""), "malformed", 12);
    const c = rowIndex("checkpoint", 20);
    await expectFileProblem(withCell(c, column("chainHash"), "0".repeat(64)), "malformed", 20);
    await expectFileProblem(withCell(0 + 1, column("tenantId"), "someone-else"), "header", null);
  });

  it("refuses cells two readers would read differently: duplicate JSON keys, text after a closing quote, loose integers", async () => {
    const e = rowIndex("event", 12);
    await expectFileProblem(withCell(e, column("data"), cellOf(e, "data").replace("{", '{"reason": "nothing happened", ')), "malformed", 12);
    // "abc-"def is abc-def to a lenient reader, abc- to another.
    const streamId = cellOf(e, "streamId");
    const split = rows[e]!.replace(`"${streamId}"`, `"${streamId.slice(0, 8)}"${streamId.slice(8)}`);
    await expectFileProblem(file(rows.map((r, j) => (j === e ? split : r))), "malformed", 12);
    // 1.2e1 is 12 to Number() and 1 to parseInt().
    await expectFileProblem(file(rows.map((r, j) => (j === e ? r.replace("event,12,", "event,1.2e1,") : r))), "malformed", 12);
  });
});

describe("tampering with the rows in the database", () => {
  it("names a modified row", async () => {
    const { tenantId, admin } = await tenantWithLog();
    await tamper((trx) => sql`update events set data = jsonb_set(data, '{reason}', '"edited"') where tenant_id = ${tenantId} and tenant_seq = 10`.execute(trx));
    await expectLogProblem(admin, "modified", 10);
    await expectFileProblem(await exportText(admin), "modified", 10);
  });

  it("names a deleted row, in the middle and at the end of the log", async () => {
    const { tenantId, admin } = await tenantWithLog();
    await tamper((trx) => sql`delete from events where tenant_id = ${tenantId} and tenant_seq = 14`.execute(trx));
    await expectLogProblem(admin, "deleted", 14);
    await expectFileProblem(await exportText(admin), "deleted", 14);

    const tail = await tenantWithLog();
    await tamper((trx) => sql`delete from events where tenant_id = ${tail.tenantId} and tenant_seq = 40`.execute(trx));
    await expectLogProblem(tail.admin, "deleted", 40);
    await expectFileProblem(await exportText(tail.admin, "?toSequence=40"), "deleted", 40);
  });

  it("names an inserted row (the rows after it renumbered, its hashes made to fit)", async () => {
    const { tenantId, admin } = await tenantWithLog();
    await tamper(async (trx) => {
      await sql`update events set tenant_seq = tenant_seq + 1000000 where tenant_id = ${tenantId} and tenant_seq >= 27`.execute(trx);
      await sql`update events set tenant_seq = tenant_seq - 1000000 + 1 where tenant_id = ${tenantId} and tenant_seq > 1000000`.execute(trx);
      await sql`update tenant_heads set last_seq = last_seq + 1 where tenant_id = ${tenantId}`.execute(trx);
      const { rows } = await sql<{ chain_hash: string }>`select chain_hash from events where tenant_id = ${tenantId} and tenant_seq = 26`.execute(trx);
      const forged = {
        eventId: randomUUID(),
        tenantId,
        streamType: "security",
        streamId: "forged",
        streamVersion: 1,
        type: "access.denied",
        schemaVersion: 1,
        data: { level: "info", status: "denied", reason: "nothing happened" },
        metadata: { actor: { subject: "mallory", kind: "user", roles: ["admin"] } },
        occurredAt: new Date().toISOString(),
      };
      const content = contentHash(forged);
      await sql`insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, occurred_at, content_hash, chain_hash)
        values (${tenantId}, 27, ${forged.streamType}, ${forged.streamId}, 1, ${forged.eventId}, ${forged.type}, 1, ${JSON.stringify(forged.data)}::jsonb,
                ${JSON.stringify(forged.metadata)}::jsonb, ${forged.occurredAt}::timestamptz, ${content}, ${chainHash(rows[0]!.chain_hash, 27, content)})`.execute(
        trx,
      );
    });
    await expectLogProblem(admin, "inserted", 27);
    await expectFileProblem(await exportText(admin), "inserted", 27);
  });

  it("names reordered rows", async () => {
    const { tenantId, admin } = await tenantWithLog();
    await tamper(async (trx) => {
      await sql`update events set tenant_seq = 1000033 where tenant_id = ${tenantId} and tenant_seq = 33`.execute(trx);
      await sql`update events set tenant_seq = 33 where tenant_id = ${tenantId} and tenant_seq = 34`.execute(trx);
      await sql`update events set tenant_seq = 34 where tenant_id = ${tenantId} and tenant_seq = 1000033`.execute(trx);
    });
    await expectLogProblem(admin, "reordered", 33);
    await expectFileProblem(await exportText(admin), "reordered", 33);
  });

  it("finds rows rewritten with recomputed hashes at the signed checkpoint that covers them", async () => {
    const { tenantId, admin } = await tenantWithLog();
    // Event 8 edited and every hash from there on recomputed, the head too: only the signature shows it.
    await tamper(async (trx) => {
      await sql`update events set data = jsonb_set(data, '{reason}', '"rewritten"') where tenant_id = ${tenantId} and tenant_seq = 8`.execute(trx);
      const { rows } = await sql<{
        tenant_seq: number;
        chain_hash: string;
        event_id: string;
        stream_type: string;
        stream_id: string;
        stream_version: number;
        event_type: string;
        schema_version: number;
        data: unknown;
        metadata: unknown;
        occurred_at: Date;
      }>`
        select * from events where tenant_id = ${tenantId} order by tenant_seq`.execute(trx);
      let chain = rows[6]!.chain_hash;
      for (const r of rows.slice(7)) {
        const content = contentHash({
          eventId: r.event_id,
          tenantId,
          streamType: r.stream_type,
          streamId: r.stream_id,
          streamVersion: r.stream_version,
          type: r.event_type,
          schemaVersion: r.schema_version,
          data: r.data,
          metadata: r.metadata,
          occurredAt: new Date(r.occurred_at).toISOString(),
        });
        chain = chainHash(chain, Number(r.tenant_seq), content);
        await sql`update events set content_hash = ${content}, chain_hash = ${chain} where tenant_id = ${tenantId} and tenant_seq = ${r.tenant_seq}`.execute(
          trx,
        );
      }
      await sql`update tenant_heads set last_chain_hash = ${chain} where tenant_id = ${tenantId}`.execute(trx);
    });
    const res = await app.gql("{ verifyAuditLog { ok problem { kind sequence message } } }", {}, { token: admin });
    expect(res.data.verifyAuditLog.problem).toMatchObject({
      kind: "CHECKPOINT_MISMATCH",
      sequence: 1,
      message: expect.stringMatching(/events 1–20 were rewritten/),
    });
    await expectFileProblem(await exportText(admin), "checkpoint-mismatch", 1);
  });

  it("names a forged checkpoint row", async () => {
    const { tenantId, admin } = await tenantWithLog();
    await tamper((trx) => sql`update audit_checkpoints set chain_hash = ${"f".repeat(64)} where tenant_id = ${tenantId} and tenant_seq = 20`.execute(trx));
    await expectLogProblem(admin, "checkpoint-signature", 20);
    await expectFileProblem(await exportText(admin), "checkpoint-signature", 20);
  });

  it("names a checkpoint row whose signed_at or kid is not the signed one", async () => {
    for (const column of ["signed_at", "kid"] as const) {
      const { tenantId, admin } = await tenantWithLog();
      await tamper((trx) =>
        column === "kid"
          ? sql`update audit_checkpoints set kid = 'mallory' where tenant_id = ${tenantId} and tenant_seq = 20`.execute(trx)
          : sql`update audit_checkpoints set signed_at = '2020-01-01T00:00:00Z' where tenant_id = ${tenantId} and tenant_seq = 20`.execute(trx),
      );
      await expectLogProblem(admin, "checkpoint-signature", 20);
      await expectFileProblem(await exportText(admin), "checkpoint-signature", 20);
    }
  });

  it("never signs a checkpoint over a chain that does not verify", async () => {
    const { tenantId, admin } = await tenantWithLog();
    await tamper((trx) =>
      sql`update events set metadata = jsonb_set(metadata, '{actor,subject}', '"someone else"') where tenant_id = ${tenantId} and tenant_seq = 31`.execute(trx),
    );
    const outcome = await signCheckpoint(checkpointDeps(), tenantId);
    expect(outcome).toMatchObject({ outcome: "refused", problem: { kind: "modified", sequence: 31 } });
    const forced = await app.kp.checkpointSigner.runOnce({ force: true });
    expect(forced[tenantId]).toMatchObject({ outcome: "refused" });
    const checkpoints = await withTenant(app.database.db, tenantId, (trx) =>
      sql<{ n: number }>`select count(*)::int as n from audit_checkpoints where tenant_id = ${tenantId}`.execute(trx),
    );
    expect(checkpoints.rows[0]!.n).toBe(1);
    await expectLogProblem(admin, "modified", 31);
  });
});

describe("signed checkpoints", () => {
  it("are signed once per tenant when two processes sign at the same time, and link into one chain", async () => {
    // Processes sharing a database share the signing key.
    const signingKey = readFileSync(path.join(app.kp.deps.config.dataDir, "signing-key.pem"), "utf8");
    registerSecret(signingKey);
    const second = await createTestApp({ database: app.database, name: "audit-tampering-2", env: { KEYPLANE_SIGNING_KEY: signingKey } });
    try {
      const { tenantId, admin } = await tenantWithLog();
      const results = await Promise.all([app.kp.checkpointSigner.runOnce({ force: true }), second.kp.checkpointSigner.runOnce({ force: true })]);
      // One signs; the other finds it done (or, having listed the tenant first, finds it current under the lock).
      const outcomes = results.map((r) => r[tenantId]?.outcome ?? "not due");
      expect(outcomes.filter((o) => o === "signed")).toHaveLength(1);
      expect(outcomes.filter((o) => o !== "signed")).toEqual([expect.stringMatching(/^(current|not due)$/)]);
      const { rows } = await withTenant(app.database.db, tenantId, (trx) =>
        sql<{ tenant_seq: number }>`select tenant_seq from audit_checkpoints where tenant_id = ${tenantId} order by tenant_seq`.execute(trx),
      );
      expect(rows.map((r) => Number(r.tenant_seq))).toEqual([20, 40]);
      const res = await app.gql("{ verifyAuditLog { ok checkpoints } }", {}, { token: admin });
      expect(res.data.verifyAuditLog).toEqual({ ok: true, checkpoints: 2 });
    } finally {
      await second.close();
    }
  });

  it("are signed by the periodic job once a tenant's oldest unsigned event is an interval old", async () => {
    const own = await createTestApp({ name: "audit-checkpoint-job", env: { AUDIT_CHECKPOINT_INTERVAL_SECONDS: "1" } });
    try {
      const seeded = await own.seedTenant();
      const checkpoints = async () =>
        (await own.gql("{ verifyAuditLog { ok checkpoints lastSequence } }", {}, { token: seeded.tokens.admin })).data.verifyAuditLog;
      await waitFor("the periodic job to sign a checkpoint", async () => (await checkpoints()).checkpoints > 0);
      expect(await checkpoints()).toMatchObject({ ok: true, checkpoints: 1 });
    } finally {
      await own.close();
    }
  });
});
