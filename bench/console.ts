/**
 * npm run bench:console
 *
 * The console's in-browser audit verification (the Audit page, Debian's Chromium) against the same
 * verifier on Node.js on one core, on one export file of BENCH_EVENTS events (default 100,000) with a
 * signed checkpoint every 1,800 events, in the same run. Keyplane (`keyplane serve`, the embedded
 * database) signs with the file's key, so the page checks every signature against the JWKS it
 * fetched, as an auditor's browser would. Prints events/s of each and their ratio; the budget is
 * 50,000 events/s in the browser.
 *
 * Environment: BENCH_EVENTS, BENCH_ROUNDS (default 3, best of), CHROMIUM_PATH.
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromiumPath, launchBrowser } from "../test/testkit/browser.ts";
import { freePort } from "../test/testkit/providerWorld.ts";
import { writeExport } from "./auditExportFile.ts";
import { intEnv } from "./benchEnv.ts";
import { timeVerifier } from "./verifierSpeed.ts";

const EVENTS = intEnv("BENCH_EVENTS", 100_000);
const ROUNDS = intEnv("BENCH_ROUNDS", 3);
const BUDGET = 50_000;
const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });

if (!chromiumPath) {
  console.error("bench:console needs Chromium (apt-get install chromium, or CHROMIUM_PATH)");
  process.exit(2);
}

const dir = mkdtempSync(path.join(tmpdir(), "keyplane-bench-console-"));
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const file = path.join(dir, "export.ndjson");
const keys = await writeExport(file, EVENTS, privateKey);
console.log(`bench:console  ${fmt(EVENTS)} events, ${fmt(statSync(file).size / 1e6)} MB of NDJSON, best of ${ROUNDS}`);

const port = await freePort();
const server = spawn(process.execPath, ["bin/keyplane.mjs", "serve"], {
  env: {
    PATH: process.env.PATH ?? "",
    HOME: dir,
    KEYPLANE_DATA_DIR: path.join(dir, "data"),
    KEYPLANE_SIGNING_KEY: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
  },
  stdio: ["ignore", "ignore", "inherit"],
});
const url = `http://127.0.0.1:${port}`;
const browser = await launchBrowser();
try {
  for (let i = 0; ; i++) {
    if ((await fetch(`${url}/healthz`).catch(() => null))?.ok) break;
    if (i > 600) throw new Error("keyplane serve did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const served = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
  if (served.keys[0]?.kid !== keys.keys[0]?.kid) throw new Error("the server does not sign with the file's key");

  const node = await timeVerifier(file, keys, { rounds: ROUNDS, threads: 1 });

  const page = await browser.newPage();
  await page.goto(url);
  await page.getByLabel("Access token").fill(readFileSync(path.join(dir, "data", "admin-token"), "utf8").trim());
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Audit" }).click();
  let best = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    await page.getByLabel("Verify an export file").setInputFiles([]);
    await page.getByLabel("Verify an export file").setInputFiles(file);
    const verdict = page.getByTestId("verification");
    await verdict.waitFor({ timeout: 600_000 });
    const text = (await verdict.textContent()) ?? "";
    const rate = /\(([\d,]+) events\/s\)/.exec(text);
    if (!text.includes("intact.") || !rate) throw new Error(`the page did not verify the file: ${text}`);
    const eventsPerSecond = Number(rate[1]!.replace(/,/g, ""));
    console.log(`  round ${round}: browser ${fmt(eventsPerSecond)} events/s`);
    best = Math.max(best, eventsPerSecond);
    // The next round waits for a fresh verdict.
    await page.reload();
    await page.getByLabel("Verify an export file").waitFor();
  }
  console.log("");
  console.log(
    `  | A Chromium, the Audit page (its verifier worker)    | ${fmt(best)} events/s  budget >= ${fmt(BUDGET)}: ${best >= BUDGET ? "PASS" : "MISS"} |`,
  );
  console.log(`  | B Node.js, keyplane audit verify --threads 1        | ${fmt(node.oneCore)} events/s |`);
  console.log(`  | ratio A/B                                           | ${(best / node.oneCore).toFixed(2)} |`);
} finally {
  await browser.close();
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
