import { open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { text as streamText } from "node:stream/consumers";
import type { JSONWebKeySet } from "jose";
import { createCheckpointSigner } from "../app/audit/checkpointSigner.ts";
import { signCheckpoint, type CheckpointDeps } from "../app/audit/signCheckpoint.ts";
import { startAuditExport } from "../app/audit/startAuditExport.ts";
import type { VerificationReport } from "../audit/verifyAuditRecords.ts";
import {
  checkpointOfJson,
  verifyDeliveredInputs,
  type DeliveredProblem,
  type DeliveredTenantReport,
  type DeliveredVerificationReport,
} from "../audit/verifyDeliveredEvents.ts";
import type { ExportInput } from "../audit/node/readExportFile.ts";
import { verifyExportChain, type ExportChainReport } from "../audit/node/verifyExportChain.ts";
import { verifyExportFile } from "../audit/node/verifyExportFile.ts";
import { pruneTenantLog, type PruneOutcome, type PruneStep } from "../app/retention/pruneTenantLog.ts";
import { createRetentionJob } from "../app/retention/retentionJob.ts";
import { PLATFORM_TENANT, systemActor } from "../auth/actor.ts";
import type { Keyplane } from "../main.ts";
import { processOwner } from "../runtime/leasedWorkers.ts";
import { findTenant, listAllTenants } from "../store/queries/tenantQueries.ts";
import type { AuditCommand } from "./auditArgs.ts";
import type { CliIo } from "./command.ts";
import { progressReporter } from "./progress.ts";

/**
 * keyplane audit export: the operator's export, read from the database directly (no server, no
 * token), recorded as an audit.exported event by the actor "cli". The file appears only once
 * complete (written beside it, then renamed).
 */
export async function runAuditExport(kp: Keyplane, cmd: Extract<AuditCommand, { command: "export" }>, io: CliIo): Promise<number> {
  const { tenantId } = cmd;
  if (tenantId !== PLATFORM_TENANT && !(await listAllTenants(kp.deps.db)).some((t) => t.tenant_id === tenantId)) {
    throw new Error(`no tenant ${tenantId} (see: keyplane tenant list)`);
  }
  const file = await startAuditExport(kp.deps, systemActor("cli", tenantId), { ...cmd.request, via: "cli" }, {}, kp.database);
  const progress = progressReporter(`exporting ${tenantId}`, io.err, Boolean(io.isTty));
  const toStdout = cmd.out === "-";
  const target = path.resolve(cmd.out);
  const partial = `${target}.partial-${process.pid}`;
  const handle = toStdout ? undefined : await open(partial, "wx", 0o600);
  let summary;
  try {
    for await (const chunk of file.chunks()) {
      // Awaiting each write holds the next page back until the disk took this one.
      if (handle) await handle.write(chunk.data);
      else io.out(chunk.data.toString("utf8"));
      progress.update(Math.max(0, chunk.sequence - file.header.anchor.sequence), file.rows);
      summary = chunk.summary ?? summary;
    }
    if (handle) {
      await handle.sync();
      await handle.close();
      await rename(partial, target);
    }
  } catch (error) {
    await handle?.close().catch(() => {});
    if (handle) await rm(partial, { force: true });
    throw error;
  }
  progress.done();
  const anchor = file.header.anchor.type === "genesis" ? "genesis" : `the checkpoint at ${file.header.anchor.sequence}`;
  const text =
    `exported ${summary!.events} events (${summary!.omitted} omitted, ${summary!.checkpoints} checkpoints) of tenant ${tenantId}, ` +
    `sequences ${file.header.fromSequence}-${file.header.toSequence}, chained from ${anchor}` +
    (toStdout ? "\n" : ` to ${target}\n`);
  (toStdout ? io.err : io.out)(text);
  return 0;
}

/**
 * keyplane audit verify: anyone can run it, with the file and the JWKS alone (no database). Several
 * files (a tenant's archives, then its live export) are verified each on its own and as one chain.
 */
export async function runAuditVerify(cmd: Extract<AuditCommand, { command: "verify" }>, io: CliIo): Promise<number> {
  const keys = cmd.jwks ? await loadJwks(cmd.jwks) : undefined;
  let ok: boolean;
  if (cmd.files.length === 1) {
    const report = await verifyExportFile(await openExport(cmd.files[0]!), { keys, threads: cmd.threads });
    io.out(cmd.json ? JSON.stringify(report) + "\n" : describe(report));
    ok = report.ok;
  } else {
    const files = cmd.files.map((file) => ({ name: file === "-" ? "stdin" : file, open: () => openExport(file) }));
    const report = await verifyExportChain(files, { keys, threads: cmd.threads });
    io.out(cmd.json ? JSON.stringify(report) + "\n" : describeChain(report));
    ok = report.ok;
  }
  if (!keys) io.err("warning: signatures not checked: pass --jwks FILE|URL (Keyplane's /.well-known/jwks.json) to check checkpoints and the end line\n");
  return ok ? 0 : 1;
}

const openExport = async (file: string): Promise<ExportInput> =>
  file === "-"
    ? process.stdin
    : await open(file).catch((error: NodeJS.ErrnoException) => {
        throw new Error(`cannot read ${file}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
      });

/** Each file's own line, each link problem, then the chain as a whole. */
function describeChain(r: ExportChainReport): string {
  let out = r.reports.map((file) => `${file.file}: ${describe(file)}`).join("");
  for (const p of r.problems) {
    if (p.previousFile !== null) out += `FAILED: ${p.kind}${p.sequence === null ? "" : ` at sequence ${p.sequence}`}: ${p.message}\n`;
  }
  if (!r.ok) return out + `FAILED: the ${r.files} files are not one intact chain (${r.problems.length} ${r.problems.length === 1 ? "problem" : "problems"})\n`;
  const start = r.startsFrom === "checkpoint" ? `the signed checkpoint at ${r.anchor!.sequence}` : "genesis";
  const counts = `${r.events} events, ${r.omitted} omitted, ${r.checkpoints} checkpoints`;
  const signatures = r.signatures === "verified" ? "signatures verified" : "signatures NOT checked";
  return out + `ok: tenant ${r.tenantId}, ${r.files} files, one chain intact from ${start} to sequence ${r.lastSequence} (${counts}; ${signatures})\n`;
}

function describe(r: VerificationReport): string {
  const start = r.startsFrom === "checkpoint" ? `the signed checkpoint at ${r.anchorSequence}` : "genesis";
  const counts = `${r.events} events, ${r.omitted} omitted, ${r.checkpoints} checkpoints`;
  const signatures = r.signatures === "verified" ? "signatures verified" : "signatures NOT checked";
  if (r.ok) return `ok: tenant ${r.tenantId}, chain intact from ${start} to sequence ${r.lastSequence} (${counts}; ${signatures})\n`;
  const p = r.problem!;
  return (
    `FAILED: ${p.kind}${p.sequence === null ? "" : ` at sequence ${p.sequence}`}: ${p.message}\n` +
    (r.tenantId ? `(tenant ${r.tenantId}, chained from ${start}; verified up to sequence ${r.lastSequence}: ${counts}; ${signatures})\n` : "")
  );
}

/**
 * keyplane audit verify-stream: what a log stream delivered, checked by its receiver with the files,
 * a signed checkpoint fetched from Keyplane (auditCheckpoint) and Keyplane's JWKS; no database.
 */
export async function runAuditVerifyStream(cmd: Extract<AuditCommand, { command: "verify-stream" }>, io: CliIo): Promise<number> {
  const keys = cmd.jwks ? await loadJwks(cmd.jwks) : undefined;
  const checkpoints = [];
  for (const source of cmd.checkpoints) {
    const text =
      source === "-"
        ? await streamText(process.stdin)
        : await readFile(source, "utf8").catch((error: NodeJS.ErrnoException) => {
            throw new Error(`--checkpoint ${source}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
          });
    try {
      checkpoints.push(checkpointOfJson(text));
    } catch (error) {
      throw new Error(`--checkpoint ${source}: ${(error as Error).message}`);
    }
  }
  const report = await verifyDeliveredInputs(
    cmd.files.map((file) => ({ name: file === "-" ? "stdin" : file, lines: linesOf(file) })),
    { keys, checkpoints, tenantId: cmd.tenantId, requireCheckpoint: cmd.requireCheckpoint, allowGaps: cmd.allowGaps },
  );
  io.out(cmd.json ? JSON.stringify(report) + "\n" : describeStream(report));
  if (!keys) io.err("warning: the checkpoint's signature was not checked: pass --jwks FILE|URL (Keyplane's /.well-known/jwks.json)\n");
  return report.ok ? 0 : 1;
}

/** The lines of a file (or stdin), opened when the verifier comes to it. */
async function* linesOf(file: string): AsyncGenerator<string> {
  const handle =
    file === "-"
      ? undefined
      : await open(file).catch((error: NodeJS.ErrnoException) => {
          throw new Error(`cannot read ${file}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
        });
  const input = handle ? handle.createReadStream() : process.stdin;
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    yield* lines;
  } finally {
    lines.close();
    if (handle) input.destroy();
  }
}

function describeStream(r: DeliveredVerificationReport): string {
  const signatures = r.signatures === "verified" ? "signatures verified" : "signatures NOT checked";
  let out = "";
  for (const t of r.tenants) out += describeTenant(t, signatures);
  for (const p of r.problems) out += `FAILED: ${problemLine(p, true)}\n`;
  if (r.problemsNotListed) out += `FAILED: ${r.problemsNotListed} more problems not listed\n`;
  if (r.skipped) out += `(${r.skipped} event records of other tenants left out)\n`;
  return out;
}

function describeTenant(t: DeliveredTenantReport, signatures: string): string {
  const received =
    t.firstSequence === null
      ? "no events received"
      : `events ${t.firstSequence}–${t.lastSequence} (${t.events} events, ${t.duplicates} repeats dropped` +
        (t.missing ? `, ${t.missing} not received${t.runs > 1 ? ` in ${t.runs - 1} gaps` : ""}` : "") +
        ")";
  if (!t.ok) {
    const count = t.problems.length + t.problemsNotListed;
    return (
      `FAILED: tenant ${t.tenantId}, ${received}: ${count} ${count === 1 ? "problem" : "problems"}\n` +
      t.problems.map((p) => `  ${problemLine(p, false)}\n`).join("") +
      (t.problemsNotListed ? `  … and ${t.problemsNotListed} more\n` : "")
    );
  }
  const from =
    t.chainFrom === "genesis"
      ? "genesis"
      : t.chainFrom === "checkpoint"
        ? `the signed checkpoint at ${t.firstSequence! - 1}`
        : `event ${t.firstSequence} (the stream starts mid-log: its chain hash is taken as given)`;
  const anchored =
    t.anchoredThrough === null ? "no checkpoint at a received event, nothing anchored" : `anchored by the signed checkpoint at ${t.anchoredThrough}`;
  const pending = t.onlyChained
    ? `; ${t.onlyChained.from === t.onlyChained.to ? `event ${t.onlyChained.from}` : `${t.onlyChained.events} events ${t.onlyChained.from}–${t.onlyChained.to}`} only chained, not yet anchored`
    : "";
  return `ok: tenant ${t.tenantId}, ${received}, chain intact from ${from}, ${anchored}${pending} (${signatures})\n`;
}

const problemLine = (p: DeliveredProblem, withTenant: boolean) =>
  `${p.kind}${withTenant && p.tenantId !== null ? ` (tenant ${p.tenantId})` : ""}${p.sequence === null ? "" : ` at sequence ${p.sequence}`}: ${p.message}`;

async function loadJwks(source: string): Promise<JSONWebKeySet> {
  let text: string;
  if (/^https?:\/\//i.test(source)) {
    const res = await fetch(source, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`--jwks ${source}: HTTP ${res.status}`);
    text = await res.text();
  } else {
    text = await readFile(source, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new Error(`--jwks ${source}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
    });
  }
  let jwks: unknown;
  try {
    jwks = JSON.parse(text);
  } catch {
    throw new Error(`--jwks ${source}: not JSON`);
  }
  if (!jwks || typeof jwks !== "object" || !Array.isArray((jwks as { keys?: unknown }).keys)) throw new Error(`--jwks ${source}: not a JWKS (no keys array)`);
  return jwks as JSONWebKeySet;
}

/** keyplane audit checkpoint: signs now, for one tenant or every tenant with new events. */
export async function runAuditCheckpoint(kp: Keyplane, cmd: Extract<AuditCommand, { command: "checkpoint" }>, io: CliIo): Promise<number> {
  const deps: CheckpointDeps = { ...kp.deps, jwks: kp.deps.verifier.jwks };
  const outcomes = cmd.tenantId
    ? { [cmd.tenantId]: await signCheckpoint(deps, cmd.tenantId) }
    : await createCheckpointSigner(deps, { intervalSeconds: 3600 }).runOnce({ force: true });
  let refused = 0;
  for (const [tenantId, result] of Object.entries(outcomes)) {
    if (result.outcome === "signed") io.out(`${tenantId}: signed checkpoint at sequence ${result.checkpoint.sequence}\n`);
    else if (result.outcome === "current") io.out(`${tenantId}: current\n`);
    else {
      refused++;
      io.out(`${tenantId}: REFUSED, the chain does not verify: ${result.problem.kind} at sequence ${result.problem.sequence}: ${result.problem.message}\n`);
    }
  }
  if (!Object.keys(outcomes).length) io.out("every tenant's checkpoint is current\n");
  return refused ? 1 : 0;
}

/** What `keyplane audit prune` did to one tenant. */
type TenantPrune = { tenantId: string } & (Exclude<PruneOutcome, { outcome: "held" }> | { outcome: "held"; reason: string | null });

/**
 * keyplane audit prune: retention now, as the periodic job runs it (same lease, so never beside a
 * server pruning the same tenant), for the tenant named or every tenant not under legal hold. Prints
 * each tenant's pruned ranges and their archives; exit 1 when a tenant failed (its failed step removed
 * nothing; the steps before it stay done).
 */
export async function runAuditPrune(kp: Keyplane, cmd: Extract<AuditCommand, { command: "prune" }>, io: CliIo): Promise<number> {
  const results: TenantPrune[] = [];
  if (cmd.tenantId !== undefined) {
    const tenantId = cmd.tenantId;
    const tenant = await findTenant(kp.deps.db, tenantId);
    if (!tenant) throw new Error(`no tenant ${tenantId} (see: keyplane tenant list)`);
    const outcome = await pruneTenantLog(kp.deps, tenantId, { owner: processOwner(), database: kp.database }).catch(
      (error: unknown): PruneOutcome => ({ outcome: "failed", steps: [], error: error instanceof Error ? error.message : String(error) }),
    );
    results.push(outcome.outcome === "held" ? { tenantId, outcome: "held", reason: tenant.legal_hold_reason } : { tenantId, ...outcome });
  } else {
    const tenants = await listAllTenants(kp.deps.db);
    const outcomes = await createRetentionJob(kp.deps, kp.database).runOnce();
    const ids = [...new Set([...tenants.map((t) => t.tenant_id), ...Object.keys(outcomes)])].sort();
    for (const tenantId of ids) {
      const outcome = outcomes[tenantId];
      if (outcome && outcome.outcome !== "held") results.push({ tenantId, ...outcome });
      // Not looked at: under legal hold (when listed, or since).
      else results.push({ tenantId, outcome: "held", reason: tenants.find((t) => t.tenant_id === tenantId)?.legal_hold_reason ?? null });
    }
  }
  const failed = results.filter((r) => r.outcome === "failed").length;
  const archiveDir = kp.deps.config.audit.archiveDir;
  const archivePath = (file: string) => path.resolve(archiveDir!, file);
  if (cmd.json) {
    const tenants = results.map((r) =>
      r.outcome === "pruned" || r.outcome === "failed"
        ? {
            ...r,
            events: r.steps.reduce((n, s) => n + s.events, 0),
            steps: r.steps.map((s) => ({ ...s, archive: s.archive && { ...s.archive, path: archivePath(s.archive.file) } })),
          }
        : r,
    );
    io.out(JSON.stringify({ ok: failed === 0, tenants }) + "\n");
  } else {
    for (const r of results) io.out(describePrune(r, archivePath));
    if (!results.length) io.out("no tenants\n");
  }
  return failed ? 1 : 0;
}

function describePrune(r: TenantPrune, archivePath: (file: string) => string): string {
  const stepLines = (steps: PruneStep[]) =>
    steps
      .map(
        (s) =>
          `  ${s.fromSequence}-${s.toSequence}: ${s.events} events, ` +
          (s.archive ? `archived as ${archivePath(s.archive.file)} (sha256 ${s.archive.sha256})` : "not archived (AUDIT_ARCHIVE_DIR is not set)") +
          "\n",
      )
      .join("");
  switch (r.outcome) {
    case "pruned": {
      const events = r.steps.reduce((n, s) => n + s.events, 0);
      const steps = r.steps.length === 1 ? "1 step" : `${r.steps.length} steps`;
      return `${r.tenantId}: pruned sequences ${r.steps[0]!.fromSequence}-${r.steps.at(-1)!.toSequence} (${events} events) in ${steps}\n` + stepLines(r.steps);
    }
    case "nothing":
      return `${r.tenantId}: nothing to prune\n`;
    case "held":
      return `${r.tenantId}: under legal hold${r.reason ? ` (${r.reason})` : ""}: nothing pruned\n`;
    case "busy":
      return `${r.tenantId}: busy: another process is pruning it (or died doing so: its lease lapses within a minute); nothing pruned here\n`;
    case "failed":
      return `${r.tenantId}: FAILED: ${r.error}${r.steps.length ? ` (after ${r.steps.length} steps done)` : ""}\n` + stepLines(r.steps);
  }
}
