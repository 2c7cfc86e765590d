import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fingerprint } from "../crypto/fingerprint.ts";

// The token file of `keyplane github-token`: checked before any token is asked for, and watched for a
// replacement behind the writer's back (cli/secretFile.ts writes it).

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

/** The fingerprint of what the file holds now, or null when it cannot be read. */
export async function fileFingerprint(file: string): Promise<string | null> {
  try {
    return fingerprint(await readFile(file, "utf8"));
  } catch {
    return null;
  }
}
