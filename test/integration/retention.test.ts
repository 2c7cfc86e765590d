import { createHash, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleCommand } from "../../src/app/handleCommand.ts";
import { rebuildProjections } from "../../src/app/rebuildProjections.ts";
import { signCheckpoint } from "../../src/app/audit/signCheckpoint.ts";
import { startAuditExport } from "../../src/app/audit/startAuditExport.ts";
import { verifyAuditLog } from "../../src/app/audit/verifyAuditLog.ts";
import { pruneTenantLog } from "../../src/app/retention/pruneTenantLog.ts";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { AccessDenied } from "../../src/domain/security/events.ts";
import type { TenantCommand } from "../../src/domain/tenant/decide.ts";
import { tenantDecider, tenantStream } from "../../src/domain/tenant/decider.ts";
import { withPlatform, withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { readCheckpoints, readLatestCheckpoint } from "../../src/store/audit/checkpointQueries.ts";
import { SNAPSHOT_TABLES } from "../../src/store/retention/pruneQueries.ts";
import { subscribeEvents } from "../testkit/eventSubscriber.ts";
import { runKeyplane } from "../testkit/keyplaneCli.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { waitFor } from "../testkit/waitFor.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { testClock } from "../testkit/testClock.ts";

// Retention (issue 21): a tenant's events older than its period are pruned, but only up to a signed
// checkpoint, after the range was archived as an export file; the log left verifies from its anchor,
// archives + live export verify as one chain, commands on pruned streams go on, a rebuild equals the
// live tables, and a tenant under legal hold, or with no limit, keeps everything.

const DAY = 86_400_000;
const scratch = scratchDirectory("keyplane-retention-");
const clock = testClock();
let app: TestApp;
let archiveDir: string;
let jwksFile: string;

beforeAll(async () => {
  archiveDir = scratch.fresh();
  app = await createTestApp({
    name: "retention",
    now: clock.now,
    env: { AUDIT_ARCHIVE_DIR: archiveDir, AUDIT_PRUNE_BATCH_EVENTS: "8", LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1" },
  });
  jwksFile = path.join(scratch.fresh(), "jwks.json");
  writeFileSync(jwksFile, await (await fetch(`${app.url}/.well-known/jwks.json`)).text());
});
afterAll(async () => {
  await app?.close();
});

const db = () => app.kp.deps.db;

const decideTenant = (tenantId: string, command: TenantCommand) =>
  handleCommand(db(), {
    tenantId,
    ...tenantStream(tenantId),
    decider: tenantDecider,
    command,
    metadata: eventMetadata(systemActor("test", tenantId)),
    occurredAt: clock.now(),
  });

const AGENT = "id version name";
async function createAgent(t: SeededTenant, name: string): Promise<{ id: string; version: number }> {
  const r = await app.gql(`mutation ($n: String!) { createAgent(input: { name: $n, type: "worker" }) { ${AGENT} } }`, { n: name }, { token: t.tokens.admin });
  expect(r.errors).toBeUndefined();
  return r.data.createAgent;
}
async function renameAgent(t: SeededTenant, agent: { id: string; version: number }, name: string) {
  return app.gql(
    `mutation ($i: UpdateAgentInput!) { updateAgent(input: $i) { ${AGENT} } }`,
    { i: { id: agent.id, expectedVersion: agent.version, name } },
    { token: t.tokens.admin },
  );
}

async function appendDenied(tenantId: string, count: number): Promise<void> {
  await withTenant(db(), tenantId, (trx) =>
    appendEvents(trx, {
      tenantId,
      streamType: "security",
      streamId: randomUUID(),
      expectedVersion: 0,
      events: Array.from({ length: count }, (_, i) => AccessDenied({ level: "warning", status: "denied", reason: "retention-test", details: { i } })),
      metadata: eventMetadata(systemActor("retention-test", tenantId)),
      occurredAt: clock.now(),
    }),
  );
}

async function signNow(tenantId: string): Promise<number> {
  const outcome = await signCheckpoint({ ...app.kp.deps, jwks: app.kp.deps.verifier.jwks }, tenantId);
  if (outcome.outcome !== "signed") throw new Error(`no checkpoint signed for ${tenantId}: ${outcome.outcome}`);
  return outcome.checkpoint.sequence;
}

const sequences = (tenantId: string) =>
  withTenant(db(), tenantId, async (trx) => {
    const rows = await trx.selectFrom("events").select("tenant_seq").where("tenant_id", "=", tenantId).orderBy("tenant_seq").execute();
    return rows.map((r) => Number(r.tenant_seq));
  });

const eventsOfType = (tenantId: string, type: string) =>
  withTenant(db(), tenantId, (trx) =>
    trx.selectFrom("events").select(["tenant_seq", "data"]).where("tenant_id", "=", tenantId).where("event_type", "=", type).orderBy("tenant_seq").execute(),
  );

/** Every read table's rows of the tenant, in a stable order. */
const readTables = (tenantId: string) =>
  withPlatform(db(), async (trx) => {
    const out: Record<string, unknown[]> = {};
    for (const table of SNAPSHOT_TABLES) {
      const { rows } = await sql<{ row: unknown }>`select to_jsonb(t) as row from ${sql.table(table)} t where t.tenant_id = ${tenantId}`.execute(trx);
      out[table] = rows.map((r) => JSON.stringify(r.row)).sort();
    }
    return out;
  });

/** Some history: agents (streams with a decider), security events (without), checkpoints between. */
async function history(t: SeededTenant) {
  const agents = [await createAgent(t, "one"), await createAgent(t, "two")];
  await appendDenied(t.tenantId, 5);
  await signNow(t.tenantId);
  const renamed = await renameAgent(t, agents[0]!, "one-b");
  agents[0] = renamed.data.updateAgent;
  await appendDenied(t.tenantId, 6);
  await signNow(t.tenantId);
  agents.push(await createAgent(t, "three"));
  await appendDenied(t.tenantId, 7);
  await signNow(t.tenantId);
  return agents;
}

async function exportTo(file: string, tenantId: string, range: { fromSequence?: number } = {}): Promise<string> {
  const exported = await startAuditExport(app.kp.deps, systemActor("cli", tenantId), { format: "ndjson", via: "cli", ...range }, {}, app.kp.database);
  const handle = await open(file, "wx", 0o600);
  try {
    for await (const chunk of exported.chunks()) await handle.write(chunk.data);
  } finally {
    await handle.close();
  }
  return file;
}

describe("retention", () => {
  it("prunes behind signed checkpoints after archiving, and everything the log served still works", async () => {
    const a = await app.seedTenant({ tier: "pro" });
    const enterprise = await app.seedTenant({ tier: "enterprise" });
    const held = await app.seedTenant({ tier: "pro" });
    await decideTenant(a.tenantId, { type: "SetRetentionPolicy", input: { days: 30 }, tierMaxDays: 365 });
    await decideTenant(held.tenantId, { type: "SetRetentionPolicy", input: { days: 30 }, tierMaxDays: 365 });
    await decideTenant(held.tenantId, { type: "SetLegalHold", input: { reason: "litigation 42" } });
    const agents = await history(a);
    await history(enterprise);
    await history(held);

    clock.advance(31 * DAY);
    // Tokens do not live a month: new ones.
    a.tokens.admin = await app.mintToken({ tenantId: a.tenantId, roles: ["admin"] });
    // Recent history, kept whatever happens.
    await appendDenied(a.tenantId, 3);
    const lastOld = (await withTenant(db(), a.tenantId, (trx) => readLatestCheckpoint(trx, a.tenantId)))!.sequence;
    const before = { enterprise: await sequences(enterprise.tenantId), held: await sequences(held.tenantId), tables: await readTables(a.tenantId) };

    const outcomes = await app.kp.retention.runOnce();
    const outcome = outcomes[a.tenantId]!;
    expect(outcome.outcome).toBe("pruned");
    if (outcome.outcome !== "pruned") return;
    // Steps of at most 8 events from one checkpoint to the next (or one whole gap when wider), up to the newest old checkpoint.
    expect(outcome.steps.length).toBeGreaterThan(1);
    expect(outcome.steps[0]!.fromSequence).toBe(1);
    expect(outcome.steps.at(-1)!.toSequence).toBe(Number(lastOld));
    for (let i = 1; i < outcome.steps.length; i++) expect(outcome.steps[i]!.fromSequence).toBe(outcome.steps[i - 1]!.toSequence + 1);

    // The log starts right after the anchor; others are untouched (no limit; legal hold).
    const kept = await sequences(a.tenantId);
    expect(kept[0]).toBe(Number(lastOld) + 1);
    expect(outcomes[enterprise.tenantId]).toEqual({ outcome: "nothing" });
    expect(outcomes[held.tenantId]).toBeUndefined();
    expect(await pruneTenantLog(app.kp.deps, held.tenantId, { owner: "test" })).toEqual({ outcome: "held" });
    expect(await sequences(enterprise.tenantId)).toEqual(before.enterprise);
    expect(await sequences(held.tenantId)).toEqual(before.held);

    // Each step is an audit.pruned event naming its range, anchor and archive, whose digest is the file's.
    const pruned = await eventsOfType(a.tenantId, "audit.pruned");
    expect(pruned.map((e) => [e.data.fromSequence, e.data.toSequence])).toEqual(outcome.steps.map((s) => [s.fromSequence, s.toSequence]));
    for (const { data } of pruned) {
      const archive = data.archive as { file: string; sha256: string };
      expect(
        createHash("sha256")
          .update(readFileSync(path.join(archiveDir, archive.file)))
          .digest("hex"),
      ).toBe(archive.sha256);
      expect(data.retentionDays).toBe(30);
    }

    // The log verifies from its anchor; archives + the live export verify as one chain.
    const verified = await verifyAuditLog({ db: db(), jwks: app.kp.deps.verifier.jwks }, a.tenantId);
    expect(verified.problem).toBeNull();
    expect(verified.fromSequence).toBe(Number(lastOld) + 1);
    const live = await exportTo(path.join(scratch.fresh(), "live.ndjson"), a.tenantId);
    const archives = pruned.map(({ data }) => path.join(archiveDir, (data.archive as { file: string }).file));
    const env = { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: scratch.fresh() };
    const chain = await runKeyplane(["audit", "verify", ...archives, live, "--jwks", jwksFile, "--json"], env);
    expect(chain.code, chain.out + chain.err).toBe(0);
    expect(JSON.parse(chain.out)).toMatchObject({ ok: true, fromSequence: 1, anchor: { type: "genesis" }, omitted: 0 });
    // An archive edited after the fact is caught.
    const tampered = path.join(scratch.fresh(), "tampered.ndjson");
    const lines = readFileSync(archives[0]!, "utf8").split("\n");
    lines[1] = lines[1]!.replace('"data":{', '"data":{"edited":true,');
    writeFileSync(tampered, lines.join("\n"));
    const refused = await runKeyplane(["audit", "verify", tampered, ...archives.slice(1), live, "--jwks", jwksFile], env);
    expect(refused.code).toBe(1);

    // Asking for the pruned part is a clear answer, not a shorter one.
    await expect(startAuditExport(app.kp.deps, systemActor("cli", a.tenantId), { format: "ndjson", via: "cli", fromSequence: 1 })).rejects.toMatchObject({
      code: "PRUNED",
      extensions: { firstAvailableSequence: Number(lastOld) + 1, anchor: { sequence: Number(lastOld) } },
    });
    await expect(verifyAuditLog({ db: db(), jwks: app.kp.deps.verifier.jwks }, a.tenantId, { from: 2 })).rejects.toMatchObject({ code: "PRUNED" });

    // A stream whose first events were pruned goes on from its snapshot: its version and state.
    const renamed = await renameAgent(a, agents[0]!, "one-c");
    expect(renamed.errors).toBeUndefined();
    expect(renamed.data.updateAgent).toMatchObject({ name: "one-c", version: agents[0]!.version + 1 });
    const stale = await renameAgent(a, agents[1]!, "two-b");
    expect(stale.errors).toBeUndefined();
    // The tenant's own stream (its tenant.created pruned) decides from its snapshot too.
    await decideTenant(a.tenantId, { type: "SetRetentionPolicy", input: { days: 20 }, tierMaxDays: 365 });
    const [changed] = (await eventsOfType(a.tenantId, "tenant.retention_set")).slice(-1);
    expect(changed!.data).toMatchObject({ days: 20, previousDays: 30 });

    // A rebuild starts from the snapshot and replays the rest: the same tables as live.
    const liveTables = await readTables(a.tenantId);
    expect(liveTables.agents).not.toEqual(before.tables.agents);
    await rebuildProjections(db());
    expect(await readTables(a.tenantId)).toEqual(liveTables);
  });

  it("lets nothing but a recorded prefix behind a signed checkpoint be deleted", async () => {
    const t = await app.seedTenant();
    const other = await app.seedTenant();
    await history(t);
    await appendDenied(other.tenantId, 4);
    const checkpoints = (await withTenant(db(), t.tenantId, (trx) => readCheckpoints(trx, t.tenantId, { after: 0, upTo: 1_000_000 }))).map((c) => ({
      seq: c.sequence,
      chain: c.chainHash,
    }));
    const [first, second] = checkpoints as [{ seq: number; chain: string }, { seq: number; chain: string }];
    let before = { t: await sequences(t.tenantId), other: await sequences(other.tenantId) };
    const asPlatform = (statement: ReturnType<typeof sql>) => withPlatform(db(), (trx) => statement.execute(trx));
    const asTenant = (statement: ReturnType<typeof sql>) => withTenant(db(), t.tenantId, (trx) => statement.execute(trx));

    for (const run of [asPlatform, asTenant]) {
      await expect(run(sql`delete from events where tenant_id = ${t.tenantId} and tenant_seq = 1`)).rejects.toThrow(/append-only: DELETE refused/);
      await expect(run(sql`update events set data = '{}'::jsonb where tenant_id = ${t.tenantId} and tenant_seq = 1`)).rejects.toThrow(
        /append-only: UPDATE refused/,
      );
      // Not at a checkpoint, not continuing from 1, another chain hash than the checkpoint's.
      await expect(run(sql`select keyplane_prune_prefix(${t.tenantId}, ${first.seq + 1}, null, null)`)).rejects.toThrow(/signed checkpoint/);
      await expect(
        run(sql`insert into audit_prunes (tenant_id, upto_seq, from_seq, chain_hash, events, upto_occurred_at)
                values (${t.tenantId}, ${second.seq}, 2, ${second.chain}, ${second.seq - 1}, now())`),
      ).rejects.toThrow(/continues the previous one/);
      await expect(
        run(sql`insert into audit_prunes (tenant_id, upto_seq, from_seq, chain_hash, events, upto_occurred_at)
                values (${t.tenantId}, ${first.seq}, 1, ${"0".repeat(64)}, ${first.seq}, now())`),
      ).rejects.toThrow(/signed checkpoint/);
    }
    await expect(asPlatform(sql`truncate events`)).rejects.toThrow(/append-only: TRUNCATE refused/);
    // Another tenant's log cannot be pruned at this tenant's checkpoint (it has none there).
    await expect(asPlatform(sql`select keyplane_prune_prefix(${other.tenantId}, ${first.seq}, null, null)`)).rejects.toThrow(/signed checkpoint|no event/);
    // A legal hold stops even the function.
    await decideTenant(t.tenantId, { type: "SetLegalHold", input: { reason: "audit" } });
    await expect(asTenant(sql`select keyplane_prune_prefix(${t.tenantId}, ${first.seq}, null, null)`)).rejects.toThrow(/legal hold/);
    await decideTenant(t.tenantId, { type: "ReleaseLegalHold" });
    // Nothing went; the hold and its release were appended.
    expect((await sequences(t.tenantId)).slice(0, before.t.length)).toEqual(before.t);
    before = { ...before, t: await sequences(t.tenantId) };

    // The function removes exactly its prefix; in the same transaction, the next event is still refused.
    await expect(
      withTenant(db(), t.tenantId, async (trx) => {
        await sql`select keyplane_prune_prefix(${t.tenantId}, ${first.seq}, null, null)`.execute(trx);
        await sql`delete from events where tenant_id = ${t.tenantId} and tenant_seq = ${first.seq + 1}`.execute(trx);
      }),
    ).rejects.toThrow(/append-only: DELETE refused/);
    expect(await sequences(t.tenantId)).toEqual(before.t);
    await withTenant(db(), t.tenantId, (trx) => sql`select keyplane_prune_prefix(${t.tenantId}, ${first.seq}, null, null)`.execute(trx));
    expect(await sequences(t.tenantId)).toEqual(before.t.filter((seq) => seq > first.seq));
    expect(await sequences(other.tenantId)).toEqual(before.other);
    // The record of it is as append-only as the log.
    await expect(asPlatform(sql`delete from audit_prunes where tenant_id = ${t.tenantId}`)).rejects.toThrow(/append-only: DELETE refused/);
    await expect(asPlatform(sql`update audit_prunes set events = 0 where tenant_id = ${t.tenantId}`)).rejects.toThrow(/append-only: UPDATE refused/);
  });

  it("answers readers behind the cut with where the log starts, and the API sets retention and holds within bounds", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const stranger = await app.seedTenant({ tier: "free" });
    const set = (token: string, days: number | null, tenantId?: string) =>
      app.gql(
        "mutation ($d: Int, $t: ID) { setRetentionPolicy(days: $d, tenantId: $t) { id retention { days tierMaxDays effectiveDays } } }",
        { d: days, t: tenantId },
        { token },
      );
    // Within the tier (free: 30 days); beyond it, or another tenant's, nothing is recorded.
    expect((await set(t.tokens.admin, 400)).errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "days" });
    expect((await set(stranger.tokens.admin, 1, t.tenantId)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(
      (await app.gql('mutation ($t: ID) { setLegalHold(reason: "x", tenantId: $t) { id } }', { t: t.tenantId }, { token: stranger.tokens.admin })).errors?.[0]
        ?.extensions?.code,
    ).toBe("NOT_FOUND");
    expect(await eventsOfType(t.tenantId, "tenant.retention_set")).toEqual([]);
    expect(await eventsOfType(t.tenantId, "tenant.legal_hold_set")).toEqual([]);
    const chosen = await set(t.tokens.admin, 7);
    expect(chosen.errors).toBeUndefined();
    expect(chosen.data.setRetentionPolicy.retention).toEqual({ days: 7, tierMaxDays: 30, effectiveDays: 7 });
    // A platform operator names the tenant to hold; a hold stops the job until released.
    let operator = await app.platformToken();
    const held = await app.gql(
      'mutation ($t: ID) { setLegalHold(reason: "case 9", tenantId: $t) { retention { legalHold { reason } } } }',
      { t: t.tenantId },
      { token: operator },
    );
    expect(held.data.setLegalHold.retention.legalHold).toEqual({ reason: "case 9" });

    // A log stream made before the history, paused: it will be behind the cut.
    const stream = await app.gql(
      "mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { secret logStream { id } } }",
      { input: { name: "late", kind: "webhook", url: "https://127.0.0.1:9/hook" } },
      { token: t.tokens.admin },
    );
    expect(stream.errors).toBeUndefined();
    registerSecret(stream.data.createLogStream.secret);
    const streamId = stream.data.createLogStream.logStream.id as string;
    expect((await app.gql("mutation ($id: ID!) { pauseLogStream(id: $id) { id } }", { id: streamId }, { token: t.tokens.admin })).errors).toBeUndefined();
    const [agent] = await history(t);

    clock.advance(8 * DAY);
    for (const role of ["admin", "viewer"] as const) t.tokens[role] = await app.mintToken({ tenantId: t.tenantId, roles: [role] });
    operator = await app.platformToken();
    expect(await pruneTenantLog(app.kp.deps, t.tenantId, { owner: "test" })).toEqual({ outcome: "held" });
    const released = await app.gql("mutation ($t: ID) { releaseLegalHold(tenantId: $t) { id } }", { t: t.tenantId }, { token: operator });
    expect(released.errors).toBeUndefined();
    const outcome = await pruneTenantLog(app.kp.deps, t.tenantId, { owner: "test" });
    expect(outcome.outcome).toBe("pruned");
    const through = (await sequences(t.tenantId))[0]! - 1;

    const retention = await app.gql("{ tenant { retention { firstAvailableSequence prunedBefore archived } } }", {}, { token: t.tokens.viewer });
    expect(retention.data.tenant.retention).toMatchObject({ firstAvailableSequence: through + 1, archived: true });
    expect(retention.data.tenant.retention.prunedBefore).not.toBeNull();

    const cursorOf = (seq: number) => Buffer.from(`seq:${seq}`).toString("base64url");
    const expectPruned = (errors: Array<{ extensions?: Record<string, unknown> }> | undefined) =>
      expect(errors?.[0]?.extensions).toMatchObject({ code: "PRUNED", firstAvailableSequence: through + 1, anchor: { sequence: through } });
    expectPruned(
      (await app.gql("query ($a: String) { auditLog(first: 5, after: $a) { edges { node { sequence } } } }", { a: cursorOf(1) }, { token: t.tokens.admin }))
        .errors,
    );
    // At the anchor itself the log goes on.
    const resumed = await app.gql(
      "query ($a: String) { auditLog(first: 1, after: $a) { edges { node { sequence } } } }",
      { a: cursorOf(through) },
      { token: t.tokens.admin },
    );
    expect(resumed.data.auditLog.edges[0].node.sequence).toBe(through + 1);
    const subscriber = subscribeEvents(app.url, t.tokens.admin, { after: cursorOf(2) });
    await subscriber.ended;
    expectPruned(subscriber.errors);
    await subscriber.dispose();
    expectPruned((await app.gql("mutation ($id: ID!) { replayLogStream(id: $id, from: 1) { id } }", { id: streamId }, { token: t.tokens.admin })).errors);
    // The paused stream, resumed, says in its health what retention took before it delivered.
    expect((await app.gql("mutation ($id: ID!) { resumeLogStream(id: $id) { id } }", { id: streamId }, { token: t.tokens.admin })).errors).toBeUndefined();
    await waitFor("the stream to report the pruned events", async () =>
      (await eventsOfType(t.tenantId, "log_stream.health_changed")).some((e) =>
        String(e.data.error ?? "").includes("were pruned by retention before this stream delivered them"),
      ),
    );
    // An agent's history shows the events its stream still holds.
    const agentHistory = await app.gql(
      "query ($id: ID!) { agent(id: $id) { history(first: 5) { sequence type } } }",
      { id: agent!.id },
      { token: t.tokens.viewer },
    );
    expect(agentHistory.errors).toBeUndefined();
    for (const e of agentHistory.data.agent.history) expect(e.sequence).toBeGreaterThan(through);
  });
});
