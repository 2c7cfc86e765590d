import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";

/**
 * A temporary directory for the suite (made before it, removed after it) and fresh subdirectories
 * of it for single tests. Call at the top level of a test file.
 */
export function scratchDirectory(prefix: string): { root: () => string; fresh: () => string } {
  let root: string | undefined;
  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), prefix));
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });
  const current = () => {
    if (!root) throw new Error("scratch directory used outside the suite's lifetime");
    return root;
  };
  return {
    root: current,
    fresh() {
      const dir = path.join(current(), randomBytes(4).toString("hex"));
      mkdirSync(dir);
      return dir;
    },
  };
}

/** What a command wrote goes to the suite's log directory, which is scanned for secrets after the run. */
export function keepCommandLog(command: string, name: string, text: string): void {
  const dir = process.env.KEYPLANE_TEST_LOG_DIR;
  if (!dir || !text) return;
  mkdirSync(dir, { recursive: true });
  appendFileSync(path.join(dir, `${command}-${name}-${process.pid}.log`), text);
}
