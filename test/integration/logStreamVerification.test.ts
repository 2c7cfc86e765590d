import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/audit/exportFormat.ts";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { parseAuditArgs } from "../../src/cli/auditArgs.ts";
import { runAuditVerifyStream } from "../../src/cli/auditCommands.ts";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { buildRequest } from "../../src/logStreams/destinations.ts";
import { readTenantHead } from "../../src/store/audit/checkpointQueries.ts";
import { readLogRecords } from "../../src/store/audit/readLogRecords.ts";
import { withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { newWebhookSecret } from "../fakes/logReceivers.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// A log stream's receiver verifying what it holds (issue 20): the events of a real tenant log as the
// deliverer sends them (webhook bodies), a signed checkpoint fetched with the auditCheckpoint query,
// the JWKS Keyplane publishes, and `keyplane audit verify-stream`.

const scratch = scratchDirectory("keyplane-stream-verify-");
let app: TestApp;
let tenant: SeededTenant;
let other: SeededTenant;

beforeAll(async () => {
  app = await createTestApp({ name: "log-stream-verification" });
  tenant = await app.seedTenant();
  other = await app.seedTenant();
});
afterAll(async () => {
  await app?.close();
});

/** Appends `count` access.denied events through the write path. */
async function append(tenantId: string, count: number): Promise<void> {
  const metadata = eventMetadata(systemActor("stream-test", tenantId), { requestId: "stream", sourceIp: "192.0.2.9" });
  const events = Array.from({ length: count }, (_, i) =>
    AccessDenied({ level: "warning", status: "denied", reason: "stream-test", resource: "audit", action: "audit:read", details: { i } }),
  );
  await withTenant(app.database.db, tenantId, (trx) =>
    appendEvents(trx, { tenantId, streamType: "bulk", streamId: randomUUID(), expectedVersion: 0, events, metadata, occurredAt: new Date() }),
  );
}

/** The tenant's events from `after` on, as the log stream delivers them (eventRecordOf). */
async function eventsOf(tenantId: string, after = 0): Promise<EventRecord[]> {
  const head = await withTenant(app.database.db, tenantId, (trx) => readTenantHead(trx, tenantId));
  const events: EventRecord[] = [];
  for await (const r of readLogRecords(app.database.db, tenantId, { after, upTo: head!.lastSequence })) if (r.kind === "event") events.push(r);
  return events;
}

/** Webhook bodies of `size` events each, one a line, as a receiver would keep them. */
function webhookFile(events: EventRecord[], size = 7): string {
  const secrets = { url: "https://siem.example.com/keyplane", secret: newWebhookSecret() };
  const lines: string[] = [];
  for (let i = 0; i < events.length; i += size) {
    const batch = { tenantId: events[0]!.tenantId, logStreamId: "ls-verify", events: events.slice(i, i + size) };
    lines.push(buildRequest("webhook", {}, secrets, batch, new Date()).body);
  }
  // At least once: the first batch came twice.
  return [lines[0]!, ...lines].join("\n") + "\n";
}

async function verifyStream(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const cmd = parseAuditArgs("verify-stream", args);
  if (cmd.command !== "verify-stream") throw new Error("not verify-stream");
  const code = await runAuditVerifyStream(cmd, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

const CHECKPOINT_QUERY = "query ($n: Int) { auditCheckpoint(atOrBefore: $n) { sequence chainHash previousSignature signedAt kid jws } }";

describe("keyplane audit verify-stream against auditCheckpoint", () => {
  it("verifies a webhook delivery against the signed checkpoint Keyplane answers, and names one edited byte", async () => {
    await append(tenant.tenantId, 20);
    await app.kp.checkpointSigner.runOnce({ force: true });
    await append(tenant.tenantId, 6);

    const answer = await app.gql(CHECKPOINT_QUERY, {}, { token: tenant.tokens.admin });
    expect(answer.errors).toBeUndefined();
    const checkpoint = answer.data.auditCheckpoint;
    expect(checkpoint).toEqual({
      sequence: expect.any(Number),
      chainHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      previousSignature: null,
      signedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      kid: expect.any(String),
      jws: expect.any(String),
    });
    const events = await eventsOf(tenant.tenantId);
    expect(events.length).toBeGreaterThan(checkpoint.sequence);
    expect(events[checkpoint.sequence - 1]!.chainHash).toBe(checkpoint.chainHash);

    const dir = scratch.fresh();
    const file = path.join(dir, "delivered.ndjson");
    const checkpointFile = path.join(dir, "checkpoint.json");
    const jwksFile = path.join(dir, "jwks.json");
    writeFileSync(file, webhookFile(events));
    writeFileSync(checkpointFile, JSON.stringify({ data: answer.data }));
    writeFileSync(jwksFile, await (await fetch(`${app.url}/.well-known/jwks.json`)).text());

    const intact = await verifyStream([file, "--checkpoint", checkpointFile, "--jwks", jwksFile, "--require-checkpoint"]);
    expect(intact.err).toBe("");
    expect(intact.code, intact.out).toBe(0);
    const last = events.at(-1)!.sequence;
    expect(intact.out).toBe(
      `ok: tenant ${tenant.tenantId}, events 1–${last} (${last} events, 7 repeats dropped), chain intact from genesis, ` +
        `anchored by the signed checkpoint at ${checkpoint.sequence}; ${last - checkpoint.sequence} events ${checkpoint.sequence + 1}–${last} only chained, not yet anchored (signatures verified)\n`,
    );
    const json = await verifyStream([file, "--checkpoint", checkpointFile, "--jwks", `${app.url}/.well-known/jwks.json`, "--json"]);
    expect(JSON.parse(json.out)).toMatchObject({
      ok: true,
      signatures: "verified",
      tenants: [{ tenantId: tenant.tenantId, events: last, duplicates: 7, anchoredThrough: checkpoint.sequence }],
    });

    // One byte of one event's data changed.
    const text = readFileSync(file, "utf8");
    expect(text.split('"details":{"i":13}')).toHaveLength(2);
    writeFileSync(file, text.replace('"details":{"i":13}', '"details":{"i":14}'));
    const tampered = await verifyStream([file, "--checkpoint", checkpointFile, "--jwks", jwksFile]);
    expect(tampered.code).toBe(1);
    const sequence = events.find((e) => (e.data as { details?: { i?: number } }).details?.i === 13)!.sequence;
    expect(tampered.out).toMatch(new RegExp(`^FAILED: tenant ${tenant.tenantId}, .*: 1 problem\\n  modified at sequence ${sequence}: `));
  });

  it("answers the latest checkpoint at or before a sequence, null before the first, and only the caller's tenant's", async () => {
    await app.kp.checkpointSigner.runOnce({ force: true });
    const latest = (await app.gql(CHECKPOINT_QUERY, {}, { token: tenant.tokens.admin })).data.auditCheckpoint;
    expect(latest.previousSignature).not.toBeNull();
    const earlier = (await app.gql(CHECKPOINT_QUERY, { n: latest.sequence - 1 }, { token: tenant.tokens.admin })).data.auditCheckpoint;
    expect(earlier.sequence).toBeLessThan(latest.sequence);
    expect(latest.previousSignature).toBe(earlier.jws.split(".")[2]);
    expect((await app.gql(CHECKPOINT_QUERY, { n: earlier.sequence - 1 }, { token: tenant.tokens.admin })).data.auditCheckpoint).toBeNull();
    const bad = await app.gql(CHECKPOINT_QUERY, { n: -1 }, { token: tenant.tokens.admin });
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");

    // Another tenant's admin gets its own tenant's checkpoint, which does not vouch for this tenant's events.
    const theirs = (await app.gql(CHECKPOINT_QUERY, {}, { token: other.tokens.admin })).data.auditCheckpoint;
    expect(theirs.jws).not.toBe(latest.jws);
    const dir = scratch.fresh();
    writeFileSync(path.join(dir, "delivered.ndjson"), webhookFile(await eventsOf(tenant.tenantId)));
    writeFileSync(path.join(dir, "theirs.json"), JSON.stringify(theirs));
    writeFileSync(path.join(dir, "jwks.json"), await (await fetch(`${app.url}/.well-known/jwks.json`)).text());
    const crossed = await verifyStream([
      path.join(dir, "delivered.ndjson"),
      "--checkpoint",
      path.join(dir, "theirs.json"),
      "--jwks",
      path.join(dir, "jwks.json"),
      "--tenant",
      tenant.tenantId,
    ]);
    expect(crossed.code).toBe(1);
    expect(crossed.out).toContain(
      `checkpoint-signature at sequence ${theirs.sequence}: the checkpoint at ${theirs.sequence} was signed for tenant ${other.tenantId}`,
    );
  });
});
