import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signCheckpoint } from "../../src/app/audit/signCheckpoint.ts";
import { startAuditExport } from "../../src/app/audit/startAuditExport.ts";
import type { EndRecord, HeaderRecord } from "../../src/audit/exportFormat.ts";
import { genesisHash } from "../../src/audit/hashing.ts";
import type { ExportChainReport } from "../../src/audit/node/verifyExportChain.ts";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { runKeyplane } from "../testkit/keyplaneCli.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { createTestApp, type TestApp } from "../testkit/testApp.ts";

// A tenant's history as retention leaves it: archives (exports cut exactly at signed checkpoints,
// each anchored where the one before ended) and the live export after them. `keyplane audit verify`
// takes them all, oldest first, and must refuse any set that is not one intact chain of that tenant.

const scratch = scratchDirectory("keyplane-audit-chain-");

let app: TestApp;
let dir: string;
let jwksFile: string;
/** The verifier needs no database: only a data directory for its configuration. */
let env: Record<string, string>;
let tenantId: string;
/** Sequences of the tenant's signed checkpoints, oldest first. */
let checkpoints: number[];
/** archive 1 (genesis to the first checkpoint), archive 2 (to the second), the live export (to the head). */
let archive1: string;
let archive2: string;
let live: string;
/** The live export's range with only audit.exported events in full (the rest as stubs). */
let liveFiltered: string;
/** Another tenant's whole log. */
let otherTenant: string;

async function appendDenied(tenant: string, count: number): Promise<void> {
  await withTenant(app.database.db, tenant, (trx) =>
    appendEvents(trx, {
      tenantId: tenant,
      streamType: "bulk",
      streamId: randomUUID(),
      expectedVersion: 0,
      events: Array.from({ length: count }, (_, i) => AccessDenied({ level: "warning", status: "denied", reason: "chain-test", details: { i } })),
      metadata: eventMetadata(systemActor("chain-test", tenant)),
      occurredAt: new Date(),
    }),
  );
}

async function signNow(tenant: string): Promise<number> {
  const outcome = await signCheckpoint({ ...app.kp.deps, jwks: app.kp.deps.verifier.jwks }, tenant);
  if (outcome.outcome !== "signed") throw new Error(`no checkpoint signed for ${tenant}: ${outcome.outcome}`);
  return outcome.checkpoint.sequence;
}

/** An export written to a file the way the archiver and `keyplane audit export` write one. */
async function exportTo(name: string, tenant: string, range: { fromSequence?: number; toSequence?: number; types?: string[] }): Promise<string> {
  const file = path.join(dir, name);
  const exported = await startAuditExport(app.kp.deps, systemActor("cli", tenant), { format: "ndjson", via: "cli", ...range }, {}, app.kp.database);
  const handle = await open(file, "wx", 0o600);
  try {
    for await (const chunk of exported.chunks()) await handle.write(chunk.data);
  } finally {
    await handle.close();
  }
  return file;
}

const linesOf = (file: string) => readFileSync(file, "utf8").trimEnd().split("\n");
const headerOf = (file: string) => JSON.parse(linesOf(file)[0]!) as HeaderRecord;
const endOf = (file: string) => JSON.parse(linesOf(file).at(-1)!) as EndRecord;

/** A copy of `file` with its lines edited. */
function edited(file: string, name: string, edit: (line: string, index: number) => string): string {
  const copy = path.join(dir, name);
  writeFileSync(copy, linesOf(file).map(edit).join("\n") + "\n");
  return copy;
}

async function verify(files: string[]): Promise<{ code: number; out: string; err: string }> {
  return runKeyplane(["audit", "verify", ...files, "--jwks", jwksFile], env);
}

async function verifyJson(files: string[]): Promise<{ code: number; report: ExportChainReport }> {
  const r = await runKeyplane(["audit", "verify", ...files, "--jwks", jwksFile, "--json"], env);
  expect(r.err).toBe("");
  return { code: r.code, report: JSON.parse(r.out) as ExportChainReport };
}

const linkProblems = (report: ExportChainReport) =>
  report.problems.map(({ kind, file, previousFile, sequence }) => ({
    kind,
    file: path.basename(file),
    previousFile: previousFile && path.basename(previousFile),
    sequence,
  }));

beforeAll(async () => {
  app = await createTestApp({ name: "audit-chain-files" });
  dir = scratch.fresh();
  env = { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: scratch.fresh() };
  jwksFile = path.join(dir, "jwks.json");
  writeFileSync(jwksFile, await (await fetch(`${app.url}/.well-known/jwks.json`)).text());

  ({ tenantId } = await app.seedTenant());
  checkpoints = [];
  for (const count of [10, 12, 8]) {
    await appendDenied(tenantId, count);
    checkpoints.push(await signNow(tenantId));
  }
  await appendDenied(tenantId, 4); // the live log runs on past its last checkpoint
  const [c1, c2] = checkpoints as [number, number, number];
  // What retention writes before pruning each range, then the export of what it kept.
  archive1 = await exportTo("archive-1.ndjson", tenantId, { fromSequence: 1, toSequence: c1 });
  archive2 = await exportTo("archive-2.ndjson", tenantId, { fromSequence: c1 + 1, toSequence: c2 });
  live = await exportTo("live.ndjson", tenantId, { fromSequence: c2 + 1 });
  liveFiltered = await exportTo("live-filtered.ndjson", tenantId, { fromSequence: c2 + 1, types: ["audit.exported"] });

  const other = (await app.seedTenant()).tenantId;
  await appendDenied(other, 6);
  await signNow(other);
  otherTenant = await exportTo("other-tenant.ndjson", other, {});
});
afterAll(async () => {
  await app?.close();
});

describe("keyplane audit verify ARCHIVE… LIVE", () => {
  it("builds archives anchored where the one before ends (the setup the rest relies on)", () => {
    const [c1, c2] = checkpoints as [number, number, number];
    expect([archive1, archive2, live].map((f) => [headerOf(f).anchor.type, headerOf(f).anchor.sequence])).toEqual([
      ["genesis", 0],
      ["checkpoint", c1],
      ["checkpoint", c2],
    ]);
    expect([endOf(archive1).lastSequence, endOf(archive2).lastSequence]).toEqual([c1, c2]);
    expect(headerOf(archive2).anchor.chainHash).toBe(endOf(archive1).lastChainHash);
  });

  it("verifies the archives and the live export as one chain, from genesis to the live head", async () => {
    const text = await verify([archive1, archive2, live]);
    expect(text.code, text.out).toBe(0);
    const last = endOf(live);
    const lines = text.out.trimEnd().split("\n");
    expect(lines.slice(0, 3)).toEqual([
      expect.stringMatching(new RegExp(`^${archive1}: ok: tenant ${tenantId}, chain intact from genesis to sequence ${checkpoints[0]} `)),
      expect.stringMatching(new RegExp(`^${archive2}: ok: tenant ${tenantId}, chain intact from the signed checkpoint at ${checkpoints[0]} `)),
      expect.stringMatching(new RegExp(`^${live}: ok: tenant ${tenantId}, chain intact from the signed checkpoint at ${checkpoints[1]} `)),
    ]);
    expect(lines[3]).toBe(
      `ok: tenant ${tenantId}, 3 files, one chain intact from genesis to sequence ${last.lastSequence} ` +
        `(${last.lastSequence} events, 0 omitted, 3 checkpoints; signatures verified)`,
    );
    expect(lines).toHaveLength(4);

    const { code, report } = await verifyJson([archive1, archive2, live]);
    expect(code).toBe(0);
    expect(report).toMatchObject({
      ok: true,
      tenantId,
      files: 3,
      startsFrom: "genesis",
      anchor: { type: "genesis", sequence: 0, chainHash: genesisHash(tenantId) },
      fromSequence: 1,
      lastSequence: last.lastSequence,
      lastChainHash: last.lastChainHash,
      // From genesis, every sequence is an event of one of the files, and no file shows one twice.
      events: last.lastSequence,
      omitted: 0,
      checkpoints: 3,
      signatures: "verified",
      problems: [],
    });
    expect(report.reports.map((r) => [path.basename(r.file), r.ok, r.startsFrom, r.anchorSequence, r.fromSequence, r.lastSequence])).toEqual([
      ["archive-1.ndjson", true, "genesis", 0, 1, checkpoints[0]],
      ["archive-2.ndjson", true, "checkpoint", checkpoints[0], checkpoints[0]! + 1, checkpoints[1]],
      ["live.ndjson", true, "checkpoint", checkpoints[1], checkpoints[1]! + 1, last.lastSequence],
    ]);
  });

  it("accepts a filtered live export that still links, counting the events it shows only as stubs", async () => {
    const { code, report } = await verifyJson([archive1, archive2, liveFiltered]);
    expect(code).toBe(0);
    const shown = endOf(liveFiltered);
    expect(shown.omitted).toBeGreaterThan(0);
    expect(report).toMatchObject({ ok: true, omitted: shown.omitted, events: endOf(archive1).events + endOf(archive2).events + shown.events });
  });

  it("refuses a missing middle archive, naming the gap and the two files", async () => {
    const [c1, c2] = checkpoints as [number, number, number];
    const text = await verify([archive1, live]);
    expect(text.code).toBe(1);
    expect(text.out).toContain(
      `FAILED: gap at sequence ${c1 + 1}: sequences ${c1 + 1}–${c2} are in no file: ${archive1} ends at ${c1}, ${live} starts from the checkpoint at ${c2}\n`,
    );
    expect(text.out.trimEnd().split("\n").at(-1)).toBe("FAILED: the 2 files are not one intact chain (1 problem)");
    const { code, report } = await verifyJson([archive1, live]);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(linkProblems(report)).toEqual([{ kind: "gap", file: "live.ndjson", previousFile: "archive-1.ndjson", sequence: c1 + 1 }]);
  });

  it("refuses files out of order, and a file given twice", async () => {
    const [c1, c2] = checkpoints as [number, number, number];
    const { code, report } = await verifyJson([archive2, archive1, live]);
    expect(code).toBe(1);
    expect(linkProblems(report)).toEqual([
      { kind: "out-of-order", file: "archive-1.ndjson", previousFile: "archive-2.ndjson", sequence: null },
      // archive 1, now second, is followed by the live export: archive 2's range is missing there.
      { kind: "gap", file: "live.ndjson", previousFile: "archive-1.ndjson", sequence: c1 + 1 },
    ]);
    expect(report.problems[0]!.message).toBe(
      `${archive1} (sequences 1–${c1}) comes before ${archive2} (sequences ${c1 + 1}–${c2}): give the files oldest first`,
    );

    const twice = await verifyJson([archive1, archive2, archive2, live]);
    expect(twice.code).toBe(1);
    expect(linkProblems(twice.report)).toEqual([
      { kind: "overlap", file: "archive-2.ndjson", previousFile: "archive-2.ndjson", sequence: c1 + 1 },
      // (the live export then links to the second archive 2, which ends where the first one does)
    ]);
  });

  it("refuses a file of another tenant", async () => {
    const other = headerOf(otherTenant).tenantId;
    const text = await verify([archive1, archive2, otherTenant]);
    expect(text.code).toBe(1);
    expect(text.out).toContain(`FAILED: other-tenant: ${otherTenant} is tenant ${other}'s log, ${archive2} tenant ${tenantId}'s\n`);
    const { report } = await verifyJson([archive1, archive2, otherTenant]);
    expect(linkProblems(report)).toEqual([{ kind: "other-tenant", file: "other-tenant.ndjson", previousFile: "archive-2.ndjson", sequence: null }]);
    // The other tenant's file is intact on its own: only the chain is refused.
    expect(report.reports.map((r) => r.ok)).toEqual([true, true, true]);
  });

  it("refuses a tampered archive: an event's data edited in the first file", async () => {
    const sequence = checkpoints[0]! - 2;
    const tampered = edited(archive1, "archive-1-tampered.ndjson", (line) =>
      line.startsWith(`{"kind":"event","sequence":${sequence},`) ? line.replace('"reason": "chain-test"', '"reason": "nothing happened"') : line,
    );
    expect(readFileSync(tampered, "utf8")).not.toBe(readFileSync(archive1, "utf8"));
    const text = await verify([tampered, archive2, live]);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(new RegExp(`^${tampered}: FAILED: modified at sequence ${sequence}: `));
    const { report } = await verifyJson([tampered, archive2, live]);
    expect(linkProblems(report)).toEqual([{ kind: "modified", file: "archive-1-tampered.ndjson", previousFile: null, sequence }]);
    expect(report.reports.map((r) => r.ok)).toEqual([false, true, true]);
  });

  it("refuses a file whose anchor checkpoint was forged: its chain hash edited", async () => {
    const forgedHash = "0".repeat(64);
    const forged = edited(archive2, "archive-2-forged-anchor.ndjson", (line, i) =>
      i === 0 ? JSON.stringify({ ...JSON.parse(line), anchor: { ...headerOf(archive2).anchor, chainHash: forgedHash } }) : line,
    );
    expect(headerOf(forged).anchor.chainHash).toBe(forgedHash);
    const text = await verify([archive1, forged, live]);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(new RegExp(`^${forged}: FAILED: header`, "m"));
    const { report } = await verifyJson([archive1, forged, live]);
    expect(report.ok).toBe(false);
    // Named at the anchor: its chain hash is not the one its checkpoint's JWS signs.
    expect(linkProblems(report)).toEqual([{ kind: "header", file: "archive-2-forged-anchor.ndjson", previousFile: null, sequence: checkpoints[0] }]);
    expect(report.reports.map((r) => r.ok)).toEqual([true, false, true]);
  });
});
