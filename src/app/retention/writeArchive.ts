import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { AuditSigner } from "../../audit/auditSignatures.ts";
import { systemActor } from "../../auth/actor.ts";
import type { DatabaseHandle, Db } from "../../store/db.ts";
import { startAuditExport } from "../audit/startAuditExport.ts";

export interface WrittenArchive {
  /** Relative to the archive directory: `<tenant>/<from>-<to>.ndjson`. */
  file: string;
  sha256: string;
}

/**
 * Writes the sequences from..to of a tenant's log as an ordinary export file (NDJSON, anchored where
 * the previous archive ended, ending in its signed end line) under `dir`, and returns only once the
 * file and its directory entry are on disk (fsync): the prune that follows may then remove the range.
 * Written beside its final name and renamed, so a file of that name is always whole. A whole file of
 * that name is an earlier run's archive of the same range whose prune did not commit (the process
 * died between the two): it is kept, so a copy already taken elsewhere stays the one recorded.
 */
export async function writeArchive(
  deps: { db: Db; auditSigner: AuditSigner; now: () => Date },
  database: Pick<DatabaseHandle, "pool">,
  dir: string,
  tenantId: string,
  range: { fromSequence: number; toSequence: number },
): Promise<WrittenArchive> {
  const file = join(tenantDirectory(tenantId), `${range.fromSequence}-${range.toSequence}.ndjson`);
  const path = join(dir, file);
  const created = await mkdir(dirname(path), { recursive: true });
  // A new directory's entry lives in its parent: those reach the disk too.
  if (created) for (let d = dirname(path); d.length >= dir.length && d !== dirname(d); d = dirname(d)) await syncDirectory(d);
  await removePartials(path);
  const kept = await existingArchive(path, tenantId, range);
  if (kept) return { file, sha256: kept };
  const exported = await startAuditExport(
    deps,
    systemActor("keyplane:retention", tenantId),
    { format: "ndjson", fromSequence: range.fromSequence, toSequence: range.toSequence, via: "archive" },
    {},
    database,
  );
  const partial = `${path}.${randomUUID()}.partial`;
  const hash = createHash("sha256");
  const handle = await open(partial, "wx", 0o640);
  try {
    let last: number | undefined;
    for await (const chunk of exported.chunks()) {
      hash.update(chunk.data);
      await handle.write(chunk.data);
      if (chunk.summary) last = chunk.summary.lastSequence;
    }
    // The export stops at the head as it was when it started: the range must have been there whole.
    if (last !== range.toSequence) throw new Error(`the archive of ${range.fromSequence}-${range.toSequence} ends at ${last}`);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(partial, { force: true });
    throw error;
  }
  await handle.close();
  await rename(partial, path);
  await syncDirectory(dirname(path));
  return { file, sha256: hash.digest("hex") };
}

/** A run that died while writing left its partial file: under the lease, nobody else writes one now. */
async function removePartials(path: string): Promise<void> {
  const prefix = `${basename(path)}.`;
  for (const name of await readdir(dirname(path))) {
    if (name.startsWith(prefix) && name.endsWith(".partial")) await rm(join(dirname(path), name), { force: true });
  }
}

/**
 * The SHA-256 of a whole archive already at `path` for this tenant and range (its header and signed
 * end line say so; files are only ever renamed there whole), or null when there is none.
 */
async function existingArchive(path: string, tenantId: string, range: { fromSequence: number; toSequence: number }): Promise<string | null> {
  const hash = createHash("sha256");
  let first = "";
  let tail = "";
  try {
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      const text = (chunk as Buffer).toString("utf8");
      if (first.length < 4096) first += text.slice(0, 4096);
      tail = (tail + text).slice(-65_536);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  const header = JSON.parse(first.slice(0, first.indexOf("\n"))) as { kind?: string; tenantId?: string; fromSequence?: number; toSequence?: number };
  const end = JSON.parse(tail.trimEnd().slice(tail.trimEnd().lastIndexOf("\n") + 1)) as { kind?: string; lastSequence?: number };
  const whole = header.kind === "header" && header.tenantId === tenantId && header.fromSequence === range.fromSequence && end.kind === "end";
  if (!whole || end.lastSequence !== range.toSequence) throw new Error(`${path} is not this range's archive: move it away`);
  return hash.digest("hex");
}

/** A tenant's directory name: its id, with anything a path could read as a separator or a parent escaped. */
export function tenantDirectory(tenantId: string): string {
  const name = encodeURIComponent(tenantId);
  return name.startsWith(".") ? `%2E${name.slice(1)}` : name;
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
