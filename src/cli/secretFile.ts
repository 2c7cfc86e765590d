import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readdir, rename, unlink } from "node:fs/promises";
import path from "node:path";

// Files that hold a secret (the token writer's token, the reference agent's credential and task
// journal): a reader sees the old content or the new, never a half-written file, and only the
// owner's user can read it.

/**
 * Writes `content` (exactly its characters, no trailing newline added) to `file`: a temporary file in the
 * same directory created 0600, written, fsynced, then renamed over `file`, and the directory fsynced so
 * the rename survives a crash. On any failure the temporary file is removed and `file` is untouched.
 */
export async function writeSecretFile(file: string, content: string): Promise<void> {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}${TEMP_SUFFIX}`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let renamed = false;
  try {
    try {
      // The umask can only take bits away; a pre-existing mode cannot apply to a file created O_EXCL.
      await handle.chmod(0o600);
      await handle.writeFile(content, "utf8");
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
