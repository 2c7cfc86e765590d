import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { fingerprint } from "../crypto/fingerprint.ts";

// The token file of `keyplane github-token`: written so that a reader sees the old token or the new one,
// never a half-written file, and only ever readable by the workload's own user.

/** Why the output path cannot be written, or null when it can (checked once, before any token is asked for). */
export async function outputProblem(file: string): Promise<string | null> {
  const dir = path.dirname(path.resolve(file));
  try {
    if (!(await stat(dir)).isDirectory()) return `the directory of --output is not a directory: ${dir}`;
    await access(dir, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? `the directory of --output does not exist: ${dir}` : `the directory of --output is not writable: ${dir} (${code ?? "error"})`;
  }
  try {
    if ((await stat(file)).isDirectory()) return `--output is a directory: ${file}`;
  } catch {
    // absent: it will be created
  }
  return null;
}

/**
 * Writes the token (exactly its characters, no trailing newline) to `file`: a temporary file in the
 * same directory created 0600, written, fsynced, then renamed over `file`, and the directory fsynced so
 * the rename survives a crash. On any failure the temporary file is removed and `file` is untouched.
 */
export async function writeTokenFile(file: string, token: string): Promise<void> {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}${TEMP_SUFFIX}`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let renamed = false;
  try {
    try {
      // The umask can only take bits away; a pre-existing mode cannot apply to a file created O_EXCL.
      await handle.chmod(0o600);
      await handle.writeFile(token, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    renamed = true;
  } finally {
    if (!renamed) await unlink(temp).catch(() => {});
  }
  await syncDirectory(dir);
}

const TEMP_SUFFIX = ".tmp";

/**
 * Removes temporary files an earlier run left next to `file` when it died between creating and
 * renaming one (they may hold a token). Returns how many were removed.
 */
export async function removeStaleTemporaries(file: string): Promise<number> {
  const target = path.resolve(file);
  const prefix = `.${path.basename(target)}.`;
  const ours = `${prefix}${process.pid}.`;
  let removed = 0;
  let names: string[];
  try {
    names = await readdir(path.dirname(target));
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || name.startsWith(ours) || !/^\.[^/]+\.\d+\.[0-9a-f]{12}\.tmp$/.test(name)) continue;
    try {
      await unlink(path.join(path.dirname(target), name));
      removed++;
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

/** The fingerprint of what the file holds now, or null when it cannot be read. */
export async function fileFingerprint(file: string): Promise<string | null> {
  try {
    return fingerprint(await readFile(file, "utf8"));
  } catch {
    return null;
  }
}

export { fingerprint };
