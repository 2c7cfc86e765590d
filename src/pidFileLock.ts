import { readFileSync, rmSync, writeFileSync } from "node:fs";

/**
 * Something one process at a time may own (the embedded database's directory, an agent's state
 * directory), held by a pid file created exclusively. A second process finds the owner's pid and is
 * refused while that process lives; a file left by a process that is gone is taken over. Returns the
 * release. `refused(holder)` is the error for a live owner; `failed(cause)` for a file that cannot be
 * written (cause) or that changed hands twice meanwhile (no cause).
 */
export function lockWithPidFile(file: string, errors: { refused(holder: number): Error; failed(cause?: NodeJS.ErrnoException): Error }): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx", mode: 0o600 });
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw errors.failed(error as NodeJS.ErrnoException);
      const holder = pidIn(file);
      if (holder && holder !== process.pid && isAlive(holder)) throw errors.refused(holder);
      rmSync(file, { force: true }); // left behind by a process that is gone
    }
  }
  throw errors.failed();
}

function pidIn(file: string): number {
  try {
    return Number(readFileSync(file, "utf8").trim());
  } catch {
    return 0; // removed meanwhile
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
