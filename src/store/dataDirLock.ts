import { mkdirSync } from "node:fs";
import path from "node:path";
import { lockWithPidFile } from "../pidFileLock.ts";

export class DataDirInUseError extends Error {}

/**
 * The embedded database belongs to one process at a time. A second `keyplane` on the same data
 * directory stops with a clear message instead of corrupting it.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = path.resolve(dataDir, "keyplane.pid");
  return lockWithPidFile(file, {
    refused: (holder) =>
      new DataDirInUseError(
        `the embedded database in ${path.resolve(dataDir)} is in use by process ${holder}; stop it first, or set DATABASE_URL to share a PostgreSQL`,
      ),
    failed: (cause) => cause ?? new DataDirInUseError(`could not lock ${file}`),
  });
}
