import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildConsoleIfStale } from "./consoleBuild.ts";

export function setup() {
  const dir = mkdtempSync(path.join(tmpdir(), "keyplane-test-logs-"));
  process.env.KEYPLANE_TEST_LOG_DIR = dir;
  buildConsoleIfStale();
  return () => {
    const secretsFile = path.join(dir, "secrets.txt");
    const secrets = new Set(
      (safeRead(secretsFile) ?? "")
        .split("\n")
        .map((s) => s.trim())
        .filter((s) => s.length >= 16),
    );
    const logs = readdirSync(dir).filter((f) => f.endsWith(".log"));
    const leaks: string[] = [];
    let lines = 0;
    for (const file of logs) {
      const text = safeRead(path.join(dir, file)) ?? "";
      lines += text.split("\n").length;
      for (const secret of secrets) if (text.includes(secret)) leaks.push(`${file}: ${secret.slice(0, 12)}…`);
    }
    rmSync(dir, { recursive: true, force: true });
    if (secrets.size === 0 || lines === 0) {
      // A run of a single file may have logged nothing; the whole suite always does.
      return;
    }
    if (leaks.length) throw new Error(`secrets found in logs (${leaks.length}):\n${leaks.join("\n")}`);
    console.log(`log scan: ${secrets.size} secrets, ${lines} log lines in ${logs.length} files, no leak`);
  };
}

function safeRead(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return null;
  }
}
