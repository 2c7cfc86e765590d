import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
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
 * Written beside its final name and renamed, so a file of that name is always whole.
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
  await mkdir(dirname(path), { recursive: true });
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
