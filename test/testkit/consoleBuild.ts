import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

// Run once per test run, by globalSetup, before any suite serves the console: two suites building it
// at once removed each other's files.

/** npm install built the console; a checkout whose console sources changed since is built again (a few seconds). */
export function buildConsoleIfStale() {
  const built = path.resolve("console/dist/index.html");
  // Files only: a folder's time changes when the typecheck writes the schema's types into it
  // (graphql-env.d.ts, not a source), which made every suite build again, at the same time.
  const newest = readdirSync("console", { recursive: true, encoding: "utf8" })
    .filter((f) => !f.startsWith("dist") && !f.endsWith("graphql-env.d.ts"))
    .map((f) => statSync(path.join("console", f)))
    .filter((stat) => stat.isFile())
    .reduce((a, stat) => Math.max(a, stat.mtimeMs), 0);
  if (!existsSync(built) || statSync(built).mtimeMs < newest) execFileSync(process.execPath, ["console/build.mjs"], { stdio: "ignore" });
}
