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
 * Then the audit explorer on a log of BENCH_LOG_EVENTS events (default 100,000, appended through
 * Keyplane's own write path into the served embedded database while serve is stopped): the page
 * opened, 40 pages of older events loaded one after another (2,000 rows), and a filter applied that
 * starts deep in the log, with the page's long tasks (the Performance API's `longtask` entries)
 * recorded throughout. The budget is no long task over 100 ms.
 *
 * Environment: BENCH_EVENTS, BENCH_ROUNDS (default 3, best of), BENCH_LOG_EVENTS, CHROMIUM_PATH.
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { AccessDenied } from "../src/domain/security/events.ts";
import { openDatabase } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { chromiumPath, launchBrowser } from "../test/testkit/browser.ts";
import { freePort } from "../test/testkit/providerWorld.ts";
import { writeExport } from "./auditExportFile.ts";
import { intEnv } from "./benchEnv.ts";
import { timeVerifier } from "./verifierSpeed.ts";

const EVENTS = intEnv("BENCH_EVENTS", 100_000);
const LOG_EVENTS = intEnv("BENCH_LOG_EVENTS", 100_000);
const LONG_TASK_BUDGET_MS = 100;
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
const dataDir = path.join(dir, "data");
const serve = () =>
  spawn(process.execPath, ["bin/keyplane.mjs", "serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dir,
      KEYPLANE_DATA_DIR: dataDir,
      KEYPLANE_SIGNING_KEY: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
const url = `http://127.0.0.1:${port}`;
const healthy = async () => {
  for (let i = 0; ; i++) {
    if ((await fetch(`${url}/healthz`).catch(() => null))?.ok) return;
    if (i > 600) throw new Error("keyplane serve did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
};
const stop = async (child: ReturnType<typeof serve>) => {
  child.kill("SIGTERM");
  if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
};
// The first start makes tenant `default` and its admin token; its log then grows while serve is
// stopped (the embedded database has one user at a time), and serve starts again on it.
let server = serve();
await healthy();
await stop(server);
const appending = performance.now();
await appendLog(dataDir, LOG_EVENTS);
console.log(`  appended ${fmt(LOG_EVENTS)} events to tenant default in ${((performance.now() - appending) / 1000).toFixed(1)} s`);
server = serve();
const browser = await launchBrowser();
try {
  await healthy();
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
  const explorer = await exploreLog(page);
  console.log("");
  console.log(
    `  | A Chromium, the Audit page (its verifier worker)    | ${fmt(best)} events/s  budget >= ${fmt(BUDGET)}: ${best >= BUDGET ? "PASS" : "MISS"} |`,
  );
  console.log(`  | B Node.js, keyplane audit verify --threads 1        | ${fmt(node.oneCore)} events/s |`);
  console.log(`  | ratio A/B                                           | ${(best / node.oneCore).toFixed(2)} |`);
  console.log(
    `  | explorer, ${fmt(LOG_EVENTS)}-event log: longest task     | ${fmt(explorer.longestTaskMs)} ms over ${explorer.longTasks} long tasks  budget <= ${LONG_TASK_BUDGET_MS}: ${explorer.longestTaskMs <= LONG_TASK_BUDGET_MS ? "PASS" : "MISS"} |`,
  );
  console.log(
    `  | explorer: a page of 50 older events, median         | ${fmt(explorer.medianPageMs)} ms (40 pages, then a filter deep in the log: ${fmt(explorer.deepFilterMs)} ms) |`,
  );
} finally {
  await browser.close();
  await stop(server);
  rmSync(dir, { recursive: true, force: true });
}

/** `count` security events appended to tenant default through Keyplane's write path (8 at a time, group commit). */
async function appendLog(dataDir: string, count: number): Promise<void> {
  const handle = await openDatabase({ dataDir });
  try {
    let next = 0;
    const started = Date.now() - count * 1000;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < count; i = next++) {
          await appendEvents(handle.db, {
            tenantId: "default",
            streamType: "security",
            streamId: "access.denied",
            expectedVersion: "any",
            events: [AccessDenied({ level: "info", status: "denied", reason: "bench", resource: "graphql", action: "agent:write", details: { n: i } })],
            metadata: { actor: { subject: `bench-${i % 13}`, kind: "user", roles: ["viewer"] }, requestId: randomUUID() },
            occurredAt: new Date(started + i * 1000),
          });
        }
      }),
    );
  } finally {
    await handle.close();
  }
}

/** The explorer on the big log, its long tasks recorded by the page (PerformanceObserver, `longtask`). */
async function exploreLog(page: Page) {
  await page.goto(`${url}/console/audit`);
  await page.getByTestId("audit-rows").getByRole("row").first().waitFor();
  await page.evaluate(() => {
    const w = window as unknown as { longTasks: number[] };
    w.longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) w.longTasks.push(entry.duration);
    }).observe({ type: "longtask", buffered: true });
  });
  const rows = page.getByTestId("audit-rows").getByRole("row");
  const pageTimes: number[] = [];
  for (let i = 1; i <= 40; i++) {
    const t0 = performance.now();
    await page.getByRole("button", { name: "Older events" }).click();
    await rows.nth(50 * (i + 1) - 1).waitFor();
    pageTimes.push(performance.now() - t0);
  }
  // A filter that starts deep in the log: events up to the middle of its time range.
  const middle = new Date(Date.now() - (LOG_EVENTS / 2) * 1000);
  const local = new Date(middle.getTime() - middle.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  const t0 = performance.now();
  await page.getByLabel("To", { exact: true }).fill(local);
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByTestId("audit-rows").getByRole("row").nth(49).waitFor();
  const deepFilterMs = performance.now() - t0;
  const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
  pageTimes.sort((a, b) => a - b);
  return {
    longTasks: longTasks.length,
    longestTaskMs: Math.max(0, ...longTasks),
    medianPageMs: pageTimes[Math.floor(pageTimes.length / 2)]!,
    deepFilterMs,
  };
}
