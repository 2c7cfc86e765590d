import { createHash, generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signCheckpoint } from "../../src/app/audit/signCheckpoint.ts";
import { tenantDirectory } from "../../src/app/retention/writeArchive.ts";
import { setRetentionPolicy } from "../../src/app/tenants.ts";
import type { EndRecord, HeaderRecord } from "../../src/audit/exportFormat.ts";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { loadConfig } from "../../src/config.ts";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { createKeyplane, type Keyplane } from "../../src/main.ts";
import { withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { killKeyplaneProcesses, runKeyplane, runKeyplaneProcess, spawnKeyplane } from "../testkit/keyplaneCli.ts";
import { privatePostgresUnavailable, startPrivatePostgres, type PrivatePostgres } from "../testkit/privatePostgres.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret, testLogger } from "../testkit/secrets.ts";

// `keyplane audit prune` (retention, issue 21) killed (SIGKILL) the moment its first archive file is
// complete on disk: between the archive and the transaction that prunes its range, or just after it.
// Run again, it finishes the job: every pruned event is in exactly one archive that an audit.pruned
// event names with its digest, no range is pruned twice, and archives + live export verify as one chain.
//
// The CLI reads the system clock (src/cli/clock.ts has no override), so the events are made old
// by appending them with an occurredAt 60 days back, straight into the database the CLI uses.

const unavailable = privatePostgresUnavailable();
if (unavailable) console.warn(`test/e2e/retentionCrash.test.ts is skipped: ${unavailable}`);

const scratch = scratchDirectory("keyplane-retention-crash-");
const signingKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const encryptionKeys = `k1:${randomBytes(32).toString("base64")}`;
const DAY = 86_400_000;
const TENANT = "crash-co";
/** A signed checkpoint every CHECKPOINT_EVERY sequences up to OLD_EVENTS, a prune step of STEP events: three steps. */
const OLD_EVENTS = 60_000;
const CHECKPOINT_EVERY = 10_000;
const STEP = 20_000;
/** Events after the last checkpoint, of today: kept whatever happens. */
const RECENT_EVENTS = 5;

interface PrunedEvent {
  sequence: number;
  data: { fromSequence: number; toSequence: number; events: number; archive: { file: string; sha256: string } | null };
}

describe.skipIf(unavailable)("keyplane audit prune killed between archive and prune", () => {
  let cluster: PrivatePostgres;
  let kp: Keyplane;
  let env: Record<string, string>;
  let archiveDir: string;
  let jwksFile: string;
  /** The tenant's head once loaded: what retention and exports append comes after it. */
  let loadedHead: number;

  const sql = async <R extends Record<string, unknown>>(text: string) => (await cluster.query<R>(text)).rows;
  const head = async () => Number((await sql<{ last_seq: string }>(`select last_seq from tenant_heads where tenant_id = '${TENANT}'`))[0]!.last_seq);

  async function append(count: number, occurredAt: Date): Promise<void> {
    await withTenant(kp.deps.db, TENANT, (trx) =>
      appendEvents(trx, {
        tenantId: TENANT,
        streamType: "security",
        streamId: randomUUID(),
        expectedVersion: 0,
        events: Array.from({ length: count }, (_, i) => AccessDenied({ level: "warning", status: "denied", reason: "retention-crash", details: { i } })),
        metadata: eventMetadata(systemActor("retention-crash", TENANT)),
        occurredAt,
      }),
    );
  }

  beforeAll(async () => {
    registerSecret(signingKey);
    cluster = await startPrivatePostgres();
    archiveDir = scratch.fresh();
    env = {
      NODE_ENV: "test",
      LOG_LEVEL: "warn",
      KEYPLANE_DATA_DIR: scratch.fresh(),
      DATABASE_URL: cluster.url,
      KEYPLANE_MIGRATE_ON_START: "true",
      KEYPLANE_SIGNING_KEY: signingKey,
      KEYPLANE_ENCRYPTION_KEYS: encryptionKeys,
      AUDIT_ARCHIVE_DIR: archiveDir,
      AUDIT_PRUNE_BATCH_EVENTS: String(STEP),
    };
    // The test's own view of the database (migrates it): loads the log and signs its checkpoints.
    kp = await createKeyplane(loadConfig(env), { logger: testLogger("retention-crash") });
    jwksFile = path.join(scratch.fresh(), "jwks.json");
    writeFileSync(jwksFile, JSON.stringify(kp.deps.verifier.jwks));

    const created = await runKeyplane(["tenant", "create", "--id", TENANT, "--name", "Crash Co", "--tier", "pro"], env);
    expect(created.code, created.err).toBe(0);
    await setRetentionPolicy(kp.deps, systemActor("cli", TENANT), TENANT, { days: 30 });
    // 60 days old, a checkpoint at every 10 000th sequence: retention may prune all of it, in steps of 20 000.
    const old = new Date(Date.now() - 60 * DAY);
    for (let checkpoint = CHECKPOINT_EVERY; checkpoint <= OLD_EVENTS; checkpoint += CHECKPOINT_EVERY) {
      for (let at = await head(); at < checkpoint; at = await head()) await append(Math.min(1000, checkpoint - at), old);
      const signed = await signCheckpoint({ ...kp.deps, jwks: kp.deps.verifier.jwks }, TENANT);
      expect(signed).toMatchObject({ outcome: "signed", checkpoint: { sequence: checkpoint } });
    }
    await append(RECENT_EVENTS, new Date());
    loadedHead = await head();
    expect(loadedHead).toBe(OLD_EVENTS + RECENT_EVENTS);
  }, 240_000);
  afterAll(async () => {
    await killKeyplaneProcesses();
    await kp?.close();
    cluster?.remove();
  });

  it("a crash between archive and prune loses nothing and prunes nothing twice", async () => {
    const tenantDir = path.join(archiveDir, tenantDirectory(TENANT));
    const archivesOnDisk = () => (existsSync(tenantDir) ? readdirSync(tenantDir) : []);

    // Killed as soon as the first archive is whole (renamed from its .partial). This nearly always
    // lands before that step's transaction committed: the directory fsync, the streams' snapshots,
    // the delete of 20 000 events and audit.pruned took ~0.6 s after the rename here, against 2 ms of
    // polling. The range is then still in the log, and the next run keeps that whole archive (a copy
    // taken of it meanwhile stays the one recorded) and prunes the range. Landing after
    // the commit (the killed run already writing the second archive, leaving its .partial), the next
    // run goes on from the second step. Both must end the same (both were run while writing this).
    const started = Date.now();
    const first = spawnKeyplane(["audit", "prune", "--tenant", TENANT], env, { timeoutMs: 120_000, log: { command: "retention-crash", name: "killed" } });
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void first.exited.then((e) => (exit = e));
    while (!archivesOnDisk().some((f) => f.endsWith(".ndjson")) && !exit) await sleep(2);
    first.kill("SIGKILL");
    expect(await first.exited, `the prune ended on its own before its first archive was seen:\n${first.out()}${first.err()}`).toMatchObject({
      signal: "SIGKILL",
    });
    const killedAfterMs = Date.now() - started;
    const firstArchive = archivesOnDisk().find((f) => f.endsWith(".ndjson"))!;
    const firstArchiveSha = createHash("sha256")
      .update(readFileSync(path.join(tenantDir, firstArchive)))
      .digest("hex");
    const committedBeforeKill = (await sql<{ n: number }>(`select count(*)::int as n from audit_prunes where tenant_id = '${TENANT}'`))[0]!.n;
    expect(committedBeforeKill).toBeLessThanOrEqual(1);
    console.info(
      `retentionCrash: killed ${killedAfterMs} ms after start, ${committedBeforeKill ? "after" : "before"} the first step committed; on disk: ${archivesOnDisk().join(", ")}`,
    );

    // The dead process's lease holds the tenant until it lapses (60 s): a run now is told so.
    const busy = await runKeyplaneProcess(["audit", "prune", "--tenant", TENANT], env, { timeoutMs: 60_000 });
    expect(busy, busy.err).toMatchObject({
      code: 0,
      out: `${TENANT}: busy: another process is pruning it (or died doing so: its lease lapses within a minute); nothing pruned here\n`,
    });
    // As if its 60 s had passed.
    await sql(`update retention_leases set lease_until = now() - interval '1 second' where tenant_id = '${TENANT}'`);

    const rerunStarted = Date.now();
    const rerun = await runKeyplaneProcess(["audit", "prune", "--tenant", TENANT], env, {
      timeoutMs: 180_000,
      log: { command: "retention-crash", name: "rerun", streams: "both" },
    });
    const rerunMs = Date.now() - rerunStarted;
    expect(rerun, rerun.err).toMatchObject({ code: 0, err: "" });
    // The rerun starts where the killed run's committed steps end, and goes to the last old checkpoint.
    const rerunFrom = committedBeforeKill ? STEP + 1 : 1;
    const rerunSteps = Array.from({ length: (OLD_EVENTS - rerunFrom + 1) / STEP }, (_, i) => [rerunFrom + i * STEP, rerunFrom + (i + 1) * STEP - 1] as const);
    console.info(`retentionCrash: the rerun pruned ${rerunSteps.length} steps in ${rerunMs} ms`);

    // audit_prunes: contiguous from 1 to the last old checkpoint, each range once.
    const prunes = await sql<{ from_seq: string; upto_seq: string; events: string; archive_file: string | null; archive_sha256: string | null }>(
      `select from_seq, upto_seq, events, archive_file, archive_sha256 from audit_prunes where tenant_id = '${TENANT}' order by upto_seq`,
    );
    const ranges = prunes.map((p) => [Number(p.from_seq), Number(p.upto_seq)] as const);
    expect(ranges).toEqual([
      [1, STEP],
      [STEP + 1, 2 * STEP],
      [2 * STEP + 1, OLD_EVENTS],
    ]);
    // ... and so are the audit.pruned events, one per prune, naming the archive audit_prunes records.
    const prunedEvents = (
      await sql<{ tenant_seq: string; data: PrunedEvent["data"] }>(
        `select tenant_seq, data from events where tenant_id = '${TENANT}' and event_type = 'audit.pruned' order by tenant_seq`,
      )
    ).map((r): PrunedEvent => ({ sequence: Number(r.tenant_seq), data: r.data }));
    expect(prunedEvents.map((e) => [e.data.fromSequence, e.data.toSequence])).toEqual(ranges);
    expect(prunedEvents.map((e) => e.data.archive)).toEqual(prunes.map((p) => ({ file: p.archive_file, sha256: p.archive_sha256 })));
    // What the rerun printed: its steps, their archives and digests.
    const printed = prunedEvents.filter((e) => e.data.fromSequence >= rerunFrom).map((e) => e.data);
    expect(printed.map((d) => [d.fromSequence, d.toSequence])).toEqual(rerunSteps);
    expect(rerun.out).toBe(
      `${TENANT}: pruned sequences ${rerunFrom}-${OLD_EVENTS} (${OLD_EVENTS - rerunFrom + 1} events) in ${rerunSteps.length} steps\n` +
        printed
          .map(
            (d) =>
              `  ${d.fromSequence}-${d.toSequence}: ${d.events} events, archived as ${path.join(archiveDir, d.archive!.file)} (sha256 ${d.archive!.sha256})\n`,
          )
          .join(""),
    );

    // Every pruned sequence is in exactly one referenced archive, whole (header to end line), whose
    // digest is the one its audit.pruned event carries.
    const archived = new Map<number, string>();
    const archiveFiles: string[] = [];
    for (const { data } of prunedEvents) {
      expect(data.archive).not.toBeNull();
      const { file, sha256 } = data.archive!;
      expect(file).toBe(path.join(tenantDirectory(TENANT), `${data.fromSequence}-${data.toSequence}.ndjson`));
      const full = path.join(archiveDir, file);
      archiveFiles.push(full);
      const bytes = readFileSync(full);
      expect(createHash("sha256").update(bytes).digest("hex"), file).toBe(sha256);
      const lines = bytes.toString("utf8").trimEnd().split("\n");
      const header = JSON.parse(lines[0]!) as HeaderRecord;
      const end = JSON.parse(lines.at(-1)!) as EndRecord;
      expect(header).toMatchObject({ kind: "header", tenantId: TENANT, fromSequence: data.fromSequence, toSequence: data.toSequence });
      expect(end).toMatchObject({ kind: "end", lastSequence: data.toSequence, events: data.events, omitted: 0 });
      for (const line of lines.slice(1, -1)) {
        const record = JSON.parse(line) as { kind: string; sequence: number };
        if (record.kind !== "event") continue;
        expect(archived.has(record.sequence), `sequence ${record.sequence} in ${file} and ${archived.get(record.sequence)}`).toBe(false);
        archived.set(record.sequence, file);
      }
    }
    expect(archived.size).toBe(OLD_EVENTS);
    expect(Math.min(...archived.keys())).toBe(1);
    expect(Math.max(...archived.keys())).toBe(OLD_EVENTS);

    // On disk: the referenced archives, nothing else (a .partial the kill left was removed by the rerun,
    // which holds the lease). The archive whole at the kill is the one recorded for its range.
    const onDisk = archivesOnDisk();
    expect(onDisk.sort()).toEqual(archiveFiles.map((f) => path.basename(f)).sort());
    const recordedFirst = prunes.find((p) => path.basename(String(p.archive_file)) === firstArchive);
    expect(recordedFirst?.archive_sha256).toBe(firstArchiveSha);

    // The log starts right after the last prune; what it keeps and the archives are the whole log, once.
    const log = await sql<{ first: string; last: string; n: number }>(
      `select min(tenant_seq) as first, max(tenant_seq) as last, count(*)::int as n from events where tenant_id = '${TENANT}'`,
    );
    expect(Number(log[0]!.first)).toBe(OLD_EVENTS + 1);
    const finalHead = await head();
    expect(Number(log[0]!.last)).toBe(finalHead);
    expect(archived.size + log[0]!.n).toBe(finalHead);

    // Run again, over every tenant: nothing is left to prune.
    const again = await runKeyplaneProcess(["audit", "prune", "--json"], env, { timeoutMs: 60_000 });
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out)).toEqual({ ok: true, tenants: [{ tenantId: TENANT, outcome: "nothing" }] });

    // The live export, then archives + export as one chain.
    const live = path.join(scratch.fresh(), "live.ndjson");
    const exported = await runKeyplane(["audit", "export", "--tenant", TENANT, "--out", live], env);
    expect(exported.code, exported.err).toBe(0);
    const verified = await runKeyplaneProcess(["audit", "verify", ...archiveFiles, live, "--jwks", jwksFile, "--json"], env, { timeoutMs: 120_000 });
    expect(verified.code, verified.out + verified.err).toBe(0);
    const exportedHead = finalHead + 1; // the export's own audit.exported comes after the range it fixed
    expect(await head()).toBe(exportedHead);
    expect(JSON.parse(verified.out)).toMatchObject({
      ok: true,
      tenantId: TENANT,
      files: archiveFiles.length + 1,
      startsFrom: "genesis",
      fromSequence: 1,
      lastSequence: finalHead,
      events: finalHead,
      omitted: 0,
      signatures: "verified",
    });

    // Nothing but retention and exports wrote after the load: one audit.pruned per prune, one
    // audit.exported per archive written (the killed run's included) and per export.
    const appended = await sql<{ event_type: string; via: string | null; from_seq: string | null; to_seq: string | null }>(
      `select event_type, data->>'via' as via, data->>'fromSequence' as from_seq, data->>'toSequence' as to_seq
         from events where tenant_id = '${TENANT}' and tenant_seq > ${loadedHead} order by tenant_seq`,
    );
    expect(loadedHead + appended.length).toBe(exportedHead);
    expect(appended.filter((e) => e.event_type === "audit.pruned")).toHaveLength(prunes.length);
    expect(appended.filter((e) => e.event_type === "audit.exported" && e.via === "cli")).toHaveLength(1);
    const archiveExports = appended.filter((e) => e.event_type === "audit.exported" && e.via === "archive");
    expect(appended.length).toBe(prunes.length + 1 + archiveExports.length);
    // Each pruned range was exported for its archive; the killed run's first range (uncommitted) or
    // second one (begun) is the only one exported twice.
    for (const [from, to] of ranges) expect(archiveExports.some((e) => Number(e.from_seq) === from && Number(e.to_seq) === to)).toBe(true);
    expect(archiveExports.length).toBeGreaterThanOrEqual(ranges.length);
    expect(archiveExports.length).toBeLessThanOrEqual(ranges.length + 1);
    // Loaded (sequences 1 to the load's head) + appended since = archived + kept + the export's event.
    expect(archived.size + log[0]!.n + 1).toBe(loadedHead + appended.length);
  }, 360_000);
});
