import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLogReceivers, type LogReceivers } from "../fakes/logReceivers.ts";
import { chromiumPath, launchBrowser, pageProblems, signInWithToken } from "../testkit/browser.ts";
import { runKeyplane } from "../testkit/keyplaneCli.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";

// Log streams and alerts in the console: `keyplane serve` allowed to deliver to the local log
// receivers (test/fakes/logReceivers.ts, HTTPS on 127.0.0.1 under their own CA), a real Chromium.
// A webhook stream made in the page, its secret read from the one-time panel and given to the
// receiver, turns healthy in the open page; a refusal shows as error with the receiver's answer, and
// Resume makes it healthy again; an alert rule made in the page fires, live. Screenshots as in
// console.test.ts.

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve("docs/images") : path.join(process.env.KEYPLANE_TEST_LOG_DIR ?? tmpdir(), "screenshots");

const require = createRequire(import.meta.url);

describe.skipIf(!chromiumPath)("log streams and alerts in the console", () => {
  let receivers: LogReceivers;
  let dataDir: string;
  let served: Served;
  let adminToken: string;
  let viewerToken: string;
  let browser: Browser;
  let firstSecret: string;

  beforeAll(async () => {
    receivers = await startLogReceivers();
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-streams-"));
    writeFileSync(path.join(dataDir, "receivers-ca.pem"), receivers.caPem);
    const env = {
      KEYPLANE_DATA_DIR: dataDir,
      LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1",
      LOG_STREAM_CA_FILE: path.join(dataDir, "receivers-ca.pem"),
      LOG_STREAM_RETRY_MAX_SECONDS: "2",
    };
    // The first start makes tenant `default` and its admin token; the CLI cannot open the embedded
    // database beside serve: stop, mint a viewer, serve again.
    const first = await serveProcess("console-streams", env);
    adminToken = readFileSync(path.join(dataDir, "admin-token"), "utf8").trim();
    registerSecret(adminToken);
    expect((await first.stop()).code).toBe(0);
    const minted = await runKeyplane(["token", "mint", "--tenant", "default", "--role", "viewer", "--sub", "viewer@console", "--ttl", "3600"], {
      KEYPLANE_DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
    });
    expect(minted.code, minted.err).toBe(0);
    viewerToken = minted.out.trim();
    registerSecret(viewerToken);
    served = await serveProcess("console-streams", env);
    browser = await launchBrowser();
    mkdirSync(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await killServedProcesses();
    await receivers?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function signIn(page: Page, token: string, subject: string) {
    await signInWithToken(page, served.url, token);
    await page.getByTestId("who").filter({ hasText: subject }).waitFor();
  }

  async function openLogStreams(page: Page) {
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Log streams" }).click();
    await page.getByRole("heading", { level: 1, name: "Log streams" }).waitFor();
  }

  const health = (page: Page, name: string, text: string) => page.getByTestId(`health-${name}`).filter({ hasText: new RegExp(`^\\W*${text}$`) });

  /** The tenant's events as the receiver accepted them, by type. */
  const delivered = (type: string) => receivers.accepted("webhook").filter((d) => d.event.type === type);

  it("creates a webhook stream whose one-time secret the receiver verifies, sees it turn healthy, then error with the receiver's answer, and healthy again on Resume, live; an alert rule made in the page fires live", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    page.on("dialog", (dialog) => void dialog.accept());
    await signIn(page, adminToken, "bootstrap-admin");
    await openLogStreams(page);
    await page.getByText("No log streams yet: create one below.").waitFor();
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
    // Set once: still there at the end only if the page was never reloaded.
    await page.evaluate(() => Object.assign(window, { sameDocument: true }));
    const sameDocument = () => page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument === true);

    // The receiver learns the secret only once the page showed it: its first answer waits a few
    // seconds (and then checks the signature against the secrets it knows by then).
    receivers.fail("webhook", { delayMs: 5000 });
    const url = receivers.webhookEndpoint("console", []);
    const create = page.getByRole("form", { name: "Create a log stream" });
    await create.getByLabel("Name", { exact: true }).fill("SIEM");
    await create.getByLabel("Kind").selectOption("webhook");
    // A webhook's secret is Keyplane's to make: no field for it.
    await expect.poll(() => create.getByLabel("HEC token").count()).toBe(0);
    await create.getByLabel("URL").fill(url);
    await create.getByRole("button", { name: "Create log stream" }).click();
    const panel = page.getByTestId("new-secret");
    await panel.getByText("Shown once:").waitFor();
    firstSecret = (await panel.getByTestId("stream-secret").textContent())!;
    registerSecret(firstSecret);
    expect(firstSecret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    receivers.webhookEndpoint("console", [firstSecret]);
    await page.getByRole("status").filter({ hasText: "Log stream SIEM created" }).waitFor();

    // Delivered and verified by the receiver: the stream turns healthy in the open page.
    const row = page.getByTestId("stream-SIEM");
    await health(page, "SIEM", "healthy").waitFor({ timeout: 30_000 });
    expect(delivered("log_stream.created").length).toBe(1);
    expect(receivers.accepted("webhook")[0]!.matchedSecret).toBe(firstSecret);
    expect(await row.getByRole("rowheader").textContent()).toBe("SIEM");
    expect(await row.textContent()).toContain(`${new URL(url).host}/webhook/console`);
    // Delivery is no event: the lag the health change left (its own event) is read again until caught up.
    await row.getByTestId("lag-SIEM").filter({ hasText: "caught up" }).waitFor({ timeout: 20_000 });
    await page.getByRole("button", { name: "Done (forget the secret)" }).click();
    await expect.poll(() => page.getByTestId("new-secret").count()).toBe(0);
    expect(await page.content()).not.toContain(firstSecret);

    // The receiver refuses the next delivery (401): an alert rule made in the page is that event.
    receivers.fail("webhook", { status: 401, body: "signing key revoked at the receiver" });
    const alerts = page.getByTestId("alerts");
    const ruleForm = page.getByRole("form", { name: "Create an alert rule" });
    await ruleForm.getByLabel("Rule name").fill("Refused access");
    await ruleForm.getByLabel("Fires on").selectOption("event_count");
    await ruleForm.getByLabel("Event type").fill("access.denied");
    await ruleForm.getByLabel("At least (events)").fill("1");
    await ruleForm.getByLabel("Within (minutes)").fill("5");
    await ruleForm.getByLabel("Cooldown (minutes)").fill("0");
    // The tenant has no Slack installation: the rule writes to the log only.
    expect(await ruleForm.getByLabel("Slack workspace").isDisabled()).toBe(true);
    await ruleForm.getByRole("button", { name: "Create alert rule" }).click();
    const rule = alerts.getByTestId("rule-Refused access");
    await rule.getByText("1 or more access.denied event within 5 minutes").waitFor();
    expect(await rule.textContent()).toContain("none (the log only)");
    await health(page, "SIEM", "error").waitFor({ timeout: 30_000 });
    await row.getByTestId("last-error-SIEM").filter({ hasText: "webhook answered HTTP 401: signing key revoked at the receiver" }).waitFor();

    // Resume retries at once: healthy again, and what the refusal held back arrives.
    await row.getByRole("button", { name: "Resume (retry) SIEM" }).click();
    await health(page, "SIEM", "healthy").waitFor({ timeout: 30_000 });
    expect(await row.getByTestId("last-error-SIEM").textContent()).toBe("none");
    expect(delivered("alert_rule.created").length).toBeGreaterThanOrEqual(1);

    // A viewer reaching for a stream is refused (access.denied): the rule fires, in the open page.
    const refused = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${viewerToken}` },
      body: JSON.stringify({ query: "{ logStreams { id } }" }),
    });
    const answer = (await refused.json()) as { errors?: { extensions?: { code?: string } }[] };
    expect(answer.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const firing = page.getByTestId("alert-firings").getByRole("row").filter({ hasText: "Refused access" });
    await firing.waitFor({ timeout: 30_000 });
    expect(await firing.textContent()).toContain("warning");
    await alerts.getByTestId("fired-Refused access").filter({ hasText: "once" }).waitFor();
    // …and the stream delivers the firing like any other event.
    await expect.poll(() => delivered("alert.fired").length, { timeout: 30_000 }).toBe(1);
    await row.getByTestId("lag-SIEM").filter({ hasText: "caught up" }).waitFor({ timeout: 20_000 });
    expect(await sameDocument()).toBe(true);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-log-streams.png"), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });

  it("has no serious or critical accessibility violation (axe-core), with each kind's fields and a row's forms open", async () => {
    // axe is injected through the DevTools protocol: the console's own policy admits no other script.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    const axe = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
    const check = async (name: string) => {
      await page.evaluate(axe);
      const violations = await page.evaluate(async () => {
        const result = await (
          globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }
        ).axe.run();
        return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}, ${v.nodes.length})`);
      });
      expect(violations, name).toEqual([]);
    };
    await signIn(page, adminToken, "bootstrap-admin");
    await openLogStreams(page);
    await health(page, "SIEM", "healthy").waitFor();
    await page.getByTestId("alert-firings").waitFor();
    await check("log streams");
    const create = page.getByRole("form", { name: "Create a log stream" });
    await create.getByLabel("Kind").selectOption("splunk");
    await create.getByLabel("HEC token").waitFor();
    await check("a Splunk stream's fields");
    await create.getByLabel("Kind").selectOption("datadog");
    await create.getByLabel("Site").waitFor();
    await check("a Datadog stream's fields");
    await page.getByRole("button", { name: "Rotate secret of SIEM" }).click();
    await page.getByRole("form", { name: "Rotate the secret of SIEM" }).waitFor();
    await check("the rotation form");
    await page.getByRole("button", { name: "Replay SIEM" }).click();
    await page.getByRole("form", { name: "Replay SIEM" }).waitFor();
    await check("the replay form");
    await context.close();
  });

  it("rotates the webhook's secret (shown once, both signing during the overlap), pauses and resumes, replays from the log's start, and deletes the rule and the stream", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    page.on("dialog", (dialog) => void dialog.accept());
    await signIn(page, adminToken, "bootstrap-admin");
    await openLogStreams(page);
    const row = page.getByTestId("stream-SIEM");
    await health(page, "SIEM", "healthy").waitFor();

    await row.getByRole("button", { name: "Rotate secret of SIEM" }).click();
    const rotate = page.getByRole("form", { name: "Rotate the secret of SIEM" });
    await rotate.getByLabel("Previous secret still signs for (hours)").fill("1");
    await rotate.getByRole("button", { name: "Rotate" }).click();
    const panel = page.getByTestId("new-secret");
    await panel.getByRole("heading", { name: "New signing secret of SIEM" }).waitFor();
    expect(await panel.textContent()).toContain("The previous secret signs beside it for 1 h");
    const second = (await panel.getByTestId("stream-secret").textContent())!;
    registerSecret(second);
    expect(second).toMatch(/^whsec_/);
    expect(second).not.toBe(firstSecret);
    // The receiver switches to the new secret at once: the next messages carry both signatures.
    receivers.webhookEndpoint("console", [second]);
    await page.getByRole("button", { name: "Done (forget the secret)" }).click();
    await expect.poll(() => page.getByTestId("new-secret").count()).toBe(0);

    await row.getByRole("button", { name: "Pause SIEM" }).click();
    await row.getByTestId("state-SIEM").filter({ hasText: "paused" }).waitFor();
    await page.getByRole("status").filter({ hasText: "SIEM paused" }).waitFor();
    await row.getByRole("button", { name: "Resume SIEM" }).click();
    await row.getByTestId("state-SIEM").filter({ hasText: "active" }).waitFor();
    await expect.poll(() => delivered("log_stream.resumed").filter((d) => d.matchedSecret === second).length, { timeout: 30_000 }).toBeGreaterThan(0);

    // Replay from sequence 1: events from before the stream existed arrive too.
    expect(receivers.accepted("webhook").some((d) => d.event.sequence === 1)).toBe(false);
    await row.getByRole("button", { name: "Replay SIEM" }).click();
    const replay = page.getByRole("form", { name: "Replay SIEM" });
    await replay.getByLabel("Deliver again from sequence").fill("1");
    await replay.getByRole("button", { name: "Replay" }).click();
    await page.getByRole("status").filter({ hasText: "SIEM delivers again from sequence 1." }).waitFor();
    await expect.poll(() => receivers.accepted("webhook").some((d) => d.event.sequence === 1), { timeout: 30_000 }).toBe(true);

    await page.getByRole("button", { name: "Delete alert rule Refused access" }).click();
    await page.getByText("No alert rules yet.").waitFor();
    await row.getByRole("button", { name: "Delete SIEM" }).click();
    await page.getByText("No log streams yet: create one below.").waitFor();
    expect(problems).toEqual([]);
    await context.close();
  });

  it("offers a viewer no Log streams page", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signIn(page, viewerToken, "viewer@console");
    const nav = page.getByRole("navigation", { name: "Pages" });
    await nav.getByRole("link", { name: "Agents" }).waitFor();
    expect(await nav.getByRole("link", { name: "Log streams" }).count()).toBe(0);
    // Its address leads to the viewer's first page instead.
    await page.goto(`${served.url}/console/log-streams`);
    await page.getByTestId("who").filter({ hasText: "viewer@console" }).waitFor();
    await page.locator('nav a[aria-current="page"]').filter({ hasText: "Overview" }).waitFor();
    expect(await page.getByRole("heading", { level: 1, name: "Log streams" }).count()).toBe(0);
    expect(await page.getByTestId("log-streams").count()).toBe(0);
    // The viewer's Overview asks only for what a viewer may read: it shows, and no refusal is recorded.
    await page.getByTestId("tenant-name").waitFor();
    await page.getByTestId("agents-online").waitFor();
    expect(await page.getByRole("heading", { name: "Last security events" }).count()).toBe(0);
    expect(await page.getByRole("alert").count()).toBe(0);
    expect(problems).toEqual([]);
    await context.close();
  });
});
