import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { Readable } from "node:stream";
import type { JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readExportRecords } from "../../src/audit/node/readExportFile.ts";
import { verifyAuditRecords, type VerificationReport } from "../../src/audit/verifyAuditRecords.ts";
import {
  EXPORT_VERSION,
  signatureOf,
  type CheckpointRecord,
  type EndRecord,
  type EventRecord,
  type ExportRecord,
  type HeaderRecord,
} from "../../src/audit/exportFormat.ts";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// GET /audit/export as an auditor uses it: the file, what it holds, that it verifies with nothing
// but Keyplane's published JWKS, who may ask for it, and that it never shows another tenant's log.

let app: TestApp;
let tenant: SeededTenant;
let other: SeededTenant;
let jwks: JSONWebKeySet;

beforeAll(async () => {
  app = await createTestApp({ name: "audit-export" });
  tenant = await app.seedTenant();
  other = await app.seedTenant();
  jwks = (await (await fetch(`${app.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
});
afterAll(async () => {
  await app?.close();
});

interface Exported {
  status: number;
  headers: Headers;
  text: string;
  records: ExportRecord[];
  header: HeaderRecord;
  end: EndRecord;
  events: EventRecord[];
}

async function exportLog(token: string | undefined, query = ""): Promise<Exported> {
  const res = await fetch(`${app.url}/audit/export${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  const records: ExportRecord[] = [];
  if (res.status === 200) for await (const r of readExportRecords(Readable.from([text]))) records.push(r as ExportRecord);
  return {
    status: res.status,
    headers: res.headers,
    text,
    records,
    header: records[0] as HeaderRecord,
    end: records.at(-1) as EndRecord,
    events: records.filter((r): r is EventRecord => r.kind === "event"),
  };
}

const verifyText = async (text: string): Promise<VerificationReport> =>
  verifyAuditRecords(readExportRecords(Readable.from([text])), { source: "export", keys: jwks });

/** Appends `count` access.denied events through the write path, `batch` per append. */
async function appendMany(tenantId: string, count: number, batch = 250): Promise<void> {
  const metadata = eventMetadata(systemActor("bulk-test", tenantId), { requestId: "bulk", sourceIp: "192.0.2.7" });
  for (let done = 0; done < count; done += batch) {
    const n = Math.min(batch, count - done);
    const events = Array.from({ length: n }, (_, i) =>
      AccessDenied({ level: "warning", status: "denied", reason: "bulk-test", resource: "audit", action: "audit:read", details: { i: done + i } }),
    );
    await withTenant(app.database.db, tenantId, (trx) =>
      appendEvents(trx, { tenantId, streamType: "bulk", streamId: randomUUID(), expectedVersion: 0, events, metadata, occurredAt: new Date() }),
    );
  }
}

const signCheckpoints = () => app.kp.checkpointSigner.runOnce({ force: true });

describe("GET /audit/export", () => {
  it("streams the whole log from genesis, across many pages, with its checkpoints, and it verifies", async () => {
    await appendMany(tenant.tenantId, 6000);
    await signCheckpoints();
    await appendMany(tenant.tenantId, 5200);
    await signCheckpoints();
    await appendMany(tenant.tenantId, 30);
    const exported = await exportLog(tenant.tokens.admin);
    expect(exported.status).toBe(200);
    expect(exported.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
    expect(exported.headers.get("content-disposition")).toMatch(new RegExp(`^attachment; filename="keyplane-audit-${tenant.tenantId}-1-\\d+\\.ndjson"$`));
    const { header, end, events } = exported;
    expect(header).toMatchObject({
      kind: "header",
      format: "keyplane-audit-export",
      version: EXPORT_VERSION,
      tenantId: tenant.tenantId,
      fromSequence: 1,
      anchor: { type: "genesis", sequence: 0 },
    });
    // Dense, in order, every one of them: the whole log up to the head when the export started.
    expect(events.map((e) => e.sequence)).toEqual(Array.from({ length: header.toSequence }, (_, i) => i + 1));
    expect(header.toSequence).toBeGreaterThan(11_230);
    const checkpoints = exported.records.filter((r): r is CheckpointRecord => r.kind === "checkpoint");
    expect(checkpoints).toHaveLength(2);
    for (const c of checkpoints) expect(exported.records[exported.records.indexOf(c) - 1]).toMatchObject({ kind: "event", sequence: c.sequence });
    // The end line signs everything the header says, the counts, and the last checkpoint line.
    expect(end).toMatchObject({
      kind: "end",
      format: "keyplane-audit-export",
      version: EXPORT_VERSION,
      exportId: header.exportId,
      events: header.toSequence,
      omitted: 0,
      checkpoints: 2,
      lastCheckpoint: { sequence: checkpoints[1]!.sequence, signature: signatureOf(checkpoints[1]!.jws) },
      lastSequence: header.toSequence,
      lastChainHash: events.at(-1)!.chainHash,
    });

    const report = await verifyText(exported.text);
    expect(report).toMatchObject({
      ok: true,
      startsFrom: "genesis",
      lastSequence: header.toSequence,
      events: header.toSequence,
      checkpoints: 2,
      signatures: "verified",
    });
  });

  it("gives every event line the hashed content, the hash chain and the product's audit fields", async () => {
    const { events } = await exportLog(tenant.tokens.admin, "?toSequence=5");
    expect(events[0]).toEqual({
      kind: "event",
      sequence: 1,
      eventId: expect.any(String),
      tenantId: tenant.tenantId,
      streamType: "tenant",
      streamId: tenant.tenantId,
      streamVersion: 1,
      type: "tenant.created",
      schemaVersion: 1,
      occurredAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      data: { tenantId: tenant.tenantId, name: `Tenant ${tenant.tenantId}`, tier: "free" },
      metadata: { actor: { subject: "testkit", kind: "platform", roles: ["platform"] } },
      contentHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      chainHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      audit: {
        timestamp: events[0]!.occurredAt,
        eventType: "tenant.created",
        level: "info",
        tenantId: tenant.tenantId,
        userId: "testkit",
        sourceIp: null,
        resource: "tenant",
        action: "tenant.created",
        status: "success",
        requestId: null,
        details: null,
      },
    });
    const denied = (await exportLog(tenant.tokens.admin, "?types=access.denied&toSequence=100")).events[0]!;
    expect(denied.audit).toEqual({
      timestamp: denied.occurredAt,
      eventType: "access.denied",
      level: "warning",
      tenantId: tenant.tenantId,
      userId: "bulk-test",
      sourceIp: "192.0.2.7",
      resource: "audit",
      action: "audit:read",
      status: "denied",
      requestId: "bulk",
      details: { i: 0 },
    });
  });

  it("records each export in the same log as audit.exported, with the range, filter, format and counts", async () => {
    const exported = await exportLog(tenant.tokens.admin, "?fromSequence=2&toSequence=40&types=access_token.issued,access.denied&format=ndjson");
    const log = await app.gql(
      `{ auditLog(first: 1, filter: { types: ["audit.exported"] }, order: NEWEST_FIRST) { edges { node { sequence type actor data metadata } } } }`,
      {},
      { token: tenant.tokens.admin },
    );
    expect(log.errors).toBeUndefined();
    const node = log.data.auditLog.edges.find((e: { node: { sequence: number } }) => e.node.sequence === exported.header.recordedAs.sequence)?.node;
    expect(node).toMatchObject({
      type: "audit.exported",
      actor: `admin@${tenant.tenantId}`,
      data: {
        exportId: exported.header.exportId,
        format: "ndjson",
        via: "http",
        fromSequence: 2,
        toSequence: 40,
        types: ["access.denied", "access_token.issued"],
        anchor: { type: "genesis", sequence: 0 },
        events: exported.end.events,
        omitted: exported.end.omitted,
      },
      metadata: { sourceIp: expect.any(String), requestId: expect.any(String) },
    });
    // The export covers the log up to the head before it: its own record comes after.
    expect(exported.header.recordedAs.sequence).toBeGreaterThan(exported.header.toSequence);
  });

  it("shows only the asked types in full and the others as stubs, so the chain still verifies", async () => {
    const exported = await exportLog(tenant.tokens.admin, "?types=access_token.issued");
    const kinds = new Set(exported.events.map((e) => e.type));
    expect([...kinds]).toEqual(["access_token.issued"]);
    expect(exported.events).toHaveLength(4); // one token per role of the seeded tenant
    const stubs = exported.records.filter((r) => r.kind === "omitted");
    expect(stubs.length).toBe(exported.header.toSequence - 4);
    expect(stubs[0]).toEqual({ kind: "omitted", sequence: 1, contentHash: expect.any(String), chainHash: expect.any(String) });
    expect(await verifyText(exported.text)).toMatchObject({ ok: true, events: 4, omitted: exported.header.toSequence - 4 });
  });

  it("starts a later range from the signed checkpoint before it, with stubs up to the range", async () => {
    const full = await exportLog(tenant.tokens.admin);
    const [first, second] = full.records.filter((r): r is CheckpointRecord => r.kind === "checkpoint");
    const exported = await exportLog(tenant.tokens.admin, `?fromSequence=${first!.sequence + 3}&toSequence=${second!.sequence + 10}`);
    expect(exported.header.anchor).toMatchObject({ type: "checkpoint", sequence: first!.sequence, chainHash: first!.chainHash, jws: first!.jws });
    expect(exported.records.filter((r) => r.kind === "omitted").map((r) => (r as { sequence: number }).sequence)).toEqual([
      first!.sequence + 1,
      first!.sequence + 2,
    ]);
    expect(exported.events[0]!.sequence).toBe(first!.sequence + 3);
    expect(exported.end.lastSequence).toBe(second!.sequence + 10);
    const report = await verifyText(exported.text);
    expect(report).toMatchObject({ ok: true, startsFrom: "checkpoint", anchorSequence: first!.sequence, checkpoints: 1, lastSequence: second!.sequence + 10 });

    // By time: everything that occurred from the 6,000th bulk event's time on.
    const from = full.events.find((e) => e.sequence === second!.sequence + 1)!.occurredAt;
    const byTime = await exportLog(tenant.tokens.admin, `?from=${encodeURIComponent(from)}`);
    expect(byTime.header.filter.from).toBe(from);
    expect(byTime.events.every((e) => e.occurredAt >= from)).toBe(true);
    expect(byTime.events[0]!.sequence).toBeLessThanOrEqual(second!.sequence + 1);
    expect(byTime.header.anchor.sequence).toBeLessThan(byTime.events[0]!.sequence);
    expect((await verifyText(byTime.text)).ok).toBe(true);

    // A window with nothing in it is a file with no events that still verifies.
    const empty = await exportLog(tenant.tokens.admin, `?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z`);
    expect(empty.events).toEqual([]);
    expect((await verifyText(empty.text)).ok).toBe(true);
  });

  it("exports the same records as CSV (a header row, a kind column, JSON in the JSON columns), and it verifies", async () => {
    const exported = await exportLog(tenant.tokens.admin, "?format=csv&toSequence=300&types=tenant.created,access.denied");
    expect(exported.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    const lines = exported.text.split("\n");
    expect(lines[0]).toBe(
      "kind,sequence,eventId,tenantId,streamType,streamId,streamVersion,type,schemaVersion,occurredAt,data,metadata,contentHash,chainHash,audit,record",
    );
    expect(lines[1]).toMatch(/^header,/);
    expect(lines[2]).toMatch(/^event,1,[0-9a-f-]{36},t-/);
    expect(exported.records.map((r) => r.kind)).toEqual([
      "header",
      ...Array(300)
        .fill(null)
        .map((_, i) => (i < 1 || i >= 5 ? "event" : "omitted")),
      "end",
    ]);
    const asJson = await exportLog(tenant.tokens.admin, "?toSequence=300&types=tenant.created,access.denied");
    expect(exported.events.map(({ audit: _a, ...e }) => e)).toEqual(asJson.events.map(({ audit: _a, ...e }) => e));
    expect(await verifyText(exported.text)).toMatchObject({ ok: true, events: 296, omitted: 4 });

    // An edited cell is found like an edited line.
    const tampered = exported.text.replace('{""i"": 41}', '{""i"": 42}');
    expect(tampered).not.toBe(exported.text);
    const report = await verifyText(tampered);
    expect(report.problem).toMatchObject({
      kind: "modified",
      sequence: exported.events.find((e) => (e.data as { details?: { i: number } }).details?.i === 41)!.sequence,
    });
  });

  it("lets an auditor token (viewer with scope audit:read) export, and refuses everyone else", async () => {
    const auditor = await app.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"], scopes: ["audit:read"], subject: "auditor" });
    expect((await exportLog(auditor, "?toSequence=3")).status).toBe(200);

    const anonymous = await exportLog(undefined);
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.text)).toEqual({ error: { code: "UNAUTHENTICATED", message: expect.any(String) } });
    expect((await exportLog("not-a-token")).status).toBe(401);

    for (const token of [tenant.tokens.viewer, tenant.tokens.editor, tenant.tokens.service, await app.platformToken()]) {
      const refused = await exportLog(token);
      expect(refused.status).toBe(403);
      expect(JSON.parse(refused.text).error.code).toBe("FORBIDDEN");
    }
    // The refusal is a security event in the tenant's log.
    const denials = await app.gql(
      `{ auditLog(first: 5, order: NEWEST_FIRST, filter: { types: ["access.denied"], actor: "editor@${tenant.tenantId}" }) { edges { node { data } } } }`,
      {},
      { token: tenant.tokens.admin },
    );
    expect(denials.data.auditLog.edges[0].node.data).toMatchObject({ reason: "missing-permission", resource: "audit", action: "audit:read", status: "denied" });

    const post = await fetch(`${app.url}/audit/export`, { method: "POST", headers: { authorization: `Bearer ${tenant.tokens.admin}` } });
    expect(post.status).toBe(405);
  });

  it.each([
    ["?from=yesterday", "from"],
    ["?from=2026-01-01", "from"],
    ["?to=2026-01-01T00:00:00Z&from=2026-02-01T00:00:00Z", "to"],
    ["?fromSequence=0", "fromSequence"],
    ["?fromSequence=abc", "fromSequence"],
    ["?fromSequence=10&toSequence=5", "toSequence"],
    ["?from=2026-01-01T00:00:00Z&fromSequence=3", "fromSequence"],
    ["?format=xml", "format"],
    ["?types=no.such_type", "types"],
    ["?format=csv&format=ndjson", "format"],
    ["?cursor=5", "cursor"],
  ])("answers %s with 400 BAD_USER_INPUT naming %s, and records nothing", async (query, field) => {
    const newest = async () =>
      (await app.gql("{ auditLog(first: 1, order: NEWEST_FIRST) { edges { node { sequence } } } }", {}, { token: tenant.tokens.admin })).data.auditLog.edges[0]
        .node.sequence;
    const before = await newest();
    const res = await exportLog(tenant.tokens.admin, query);
    expect(res.status).toBe(400);
    const body = JSON.parse(res.text);
    expect(body.error).toMatchObject({ code: "BAD_USER_INPUT", field });
    expect(body.error.message).toMatch(new RegExp(`^${field}: `));
    expect(await newest()).toBe(before);
  });

  it("gives another tenant's token only that tenant's log, and its verification only that log", async () => {
    const mine = await exportLog(other.tokens.admin);
    expect(mine.status).toBe(200);
    expect(mine.header.tenantId).toBe(other.tenantId);
    expect(mine.events.length).toBeGreaterThan(0);
    expect(mine.events.every((e) => e.tenantId === other.tenantId && e.audit!.tenantId === other.tenantId)).toBe(true);
    expect(mine.text).not.toContain(tenant.tenantId);
    expect(mine.events.length).toBeLessThan(20);
    expect((await verifyText(mine.text)).ok).toBe(true);
    // Asking for the other tenant's sequences gets this tenant's (short) log, never the other's.
    const far = await exportLog(other.tokens.admin, "?fromSequence=5000&toSequence=5100");
    expect(far.events).toEqual([]);
    expect(far.text).not.toContain(tenant.tenantId);

    const verified = await app.gql("{ verifyAuditLog { ok events lastSequence } }", {}, { token: other.tokens.admin });
    expect(verified.data.verifyAuditLog).toEqual({ ok: true, events: verified.data.verifyAuditLog.lastSequence, lastSequence: expect.any(Number) });
    expect(verified.data.verifyAuditLog.lastSequence).toBeLessThan(20);
  });

  it("waits for a slow reader (backpressure) and stops when the reader goes away", async () => {
    const url = new URL(`${app.url}/audit/export`);
    // A reader that takes nothing for a while, then everything: the file is whole. (The pause is the
    // slow reader itself, not a wait for anything: on a busy machine it only lasts longer.)
    const slow = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(url, { headers: { authorization: `Bearer ${tenant.tokens.admin}` } }, (res) => {
        res.pause();
        setTimeout(() => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
          res.resume();
        }, 1500);
      });
      req.on("error", reject);
      req.end();
    });
    expect((await verifyText(slow)).ok).toBe(true);

    // A reader that leaves after the first bytes: the server lets go and keeps serving.
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(url, { headers: { authorization: `Bearer ${tenant.tokens.admin}` } }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", (error) => ((error as NodeJS.ErrnoException).code === "ECONNRESET" ? resolve() : reject(error)));
      req.end();
    });
    const after = await exportLog(tenant.tokens.admin, "?toSequence=10");
    expect(after.status).toBe(200);
    expect((await verifyText(after.text)).ok).toBe(true);
  });
});

describe("verifyAuditLog", () => {
  it("verifies the tenant's rows from genesis, or from the checkpoint before `from`, to the head", async () => {
    const whole = await app.gql(
      "{ verifyAuditLog { ok startsFrom anchorSequence fromSequence toSequence lastSequence events checkpoints problem { kind } } }",
      {},
      { token: tenant.tokens.admin },
    );
    expect(whole.errors).toBeUndefined();
    const v = whole.data.verifyAuditLog;
    expect(v).toMatchObject({ ok: true, startsFrom: "GENESIS", anchorSequence: 0, fromSequence: 1, checkpoints: 2, problem: null });
    expect(v.events).toBe(v.lastSequence);
    expect(v.toSequence).toBe(v.lastSequence);

    const full = await exportLog(tenant.tokens.admin, "?types=tenant.created");
    const first = full.records.find((r): r is CheckpointRecord => r.kind === "checkpoint")!;
    const part = await app.gql(
      "query ($from: Int!, $to: Int!) { verifyAuditLog(from: $from, to: $to) { ok startsFrom anchorSequence fromSequence toSequence lastSequence checkpoints } }",
      { from: first.sequence + 100, to: first.sequence + 200 },
      { token: tenant.tokens.admin },
    );
    expect(part.data.verifyAuditLog).toEqual({
      ok: true,
      startsFrom: "CHECKPOINT",
      anchorSequence: first.sequence,
      fromSequence: first.sequence + 100,
      toSequence: first.sequence + 200,
      lastSequence: first.sequence + 200,
      checkpoints: 0,
    });

    const bad = await app.gql("{ verifyAuditLog(from: 0) { ok } }", {}, { token: tenant.tokens.admin });
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });
});
