import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { gzipSync } from "node:zlib";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, launchBrowser, pageProblems, signInWithToken } from "../testkit/browser.ts";
import { runKeyplane } from "../testkit/keyplaneCli.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";

// The console as a person uses it: `keyplane serve` on the embedded database (as `npm start` runs
// it), a real Chromium, the admin token the first start wrote. Screenshots of each page go to the
// run's log directory, and to docs/images/ with UPDATE_SCREENSHOTS=1.

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve("docs/images") : path.join(process.env.KEYPLANE_TEST_LOG_DIR ?? tmpdir(), "screenshots");

const require = createRequire(import.meta.url);

describe.skipIf(!chromiumPath)("the console in a browser", () => {
  let dataDir: string;
  let served: Served;
  let adminToken: string;
  let platformToken: string;
  let browser: Browser;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-"));
    // A platform operator's token, minted before serve holds the embedded database.
    const minted = await runKeyplane(["token", "mint", "--role", "platform", "--sub", "ops@platform"], { KEYPLANE_DATA_DIR: dataDir });
    expect(minted.code, minted.err).toBe(0);
    platformToken = minted.out.trim();
    registerSecret(platformToken);
    served = await serveProcess("console", { KEYPLANE_DATA_DIR: dataDir });
    adminToken = readFileSync(path.join(dataDir, "admin-token"), "utf8").trim();
    registerSecret(adminToken);
    browser = await launchBrowser();
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await killServedProcesses();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function signIn(page: Page, token = adminToken) {
    await signInWithToken(page, served.url, token);
    await page.getByTestId("who").filter({ hasText: "bootstrap-admin" }).waitFor();
  }

  it("/ leads to the console, served with a Content-Security-Policy that allows only its own origin", async () => {
    const root = await fetch(served.url, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/console/");
    const page = await fetch(`${served.url}/console/agents`);
    expect(page.status).toBe(200);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'self'");
    const html = await page.text();
    // No inline script: every script is a file of the console's own.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const missing = await fetch(`${served.url}/console/assets/../../package.json`);
    expect(missing.status).not.toBe(200);
  });

  it("signs in with the admin token, shows who and which tenant, and keeps only a session in the tab", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signIn(page);
    await expect.poll(() => page.getByTestId("who").textContent()).toBe("bootstrap-admin · default · admin");
    await page.getByTestId("tenant-name").filter({ hasText: "Default" }).waitFor();
    expect(await page.getByTestId("tenant-tier").textContent()).toBe("free");
    // What the tier allows against what is used: the free tier's 60 requests a minute (npm start runs
    // without rate limits, which the page says) and agents created today.
    const usage = (name: string) => page.getByTestId("usage").filter({ hasText: name }).textContent();
    expect(await usage("API requests this minute")).toBe("API requests this minutenot counted (rate limits are off)60 ");
    expect(await usage("Agent creations in the last 24 hours")).toMatch(/^Agent creations in the last 24 hours0\d+/);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-overview.png"), fullPage: true });

    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("keyplane.session"), local: JSON.stringify(localStorage) }));
    const session = JSON.parse(stored.session!) as { accessToken: string; refreshToken: string; expiresAt: string };
    registerSecret(session.accessToken);
    registerSecret(session.refreshToken);
    expect(session.accessToken).not.toBe(adminToken);
    expect(stored.session).not.toContain(adminToken);
    expect(stored.local).not.toContain(adminToken);
    expect(Date.parse(session.expiresAt) - Date.now()).toBeLessThanOrEqual(15 * 60_000);

    // A reload keeps the session (this tab's storage); signing out revokes it.
    await page.reload();
    await page.getByTestId("who").filter({ hasText: "bootstrap-admin" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Access token").waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("keyplane.session"))).toBeNull();
    await expect.poll(() => codeOf(session.accessToken)).toBe("UNAUTHENTICATED");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("says in words, with the code, why a token is refused", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(served.url);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-sign-in.png") });
    await page.getByLabel("Access token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/sign in again.*\(UNAUTHENTICATED\)/);
    await context.close();
  });

  it("explores the audit log, exports it, verifies it in the page, and names the first bad sequence of a tampered copy", async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signIn(page);
    await page.getByRole("link", { name: "Audit" }).click();
    // The log of tenant 'default' starts with its creation and the admin token's issue.
    const rows = page.getByTestId("audit-rows");
    await rows.getByText("tenant.created").waitFor();
    await rows.getByRole("button", { name: "1", exact: true }).click();
    await rows.getByText("Chain hash").waitFor();
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-audit.png"), fullPage: true });

    await page.getByRole("button", { name: "Export", exact: true }).click();
    await page.getByTestId("export-link").waitFor();
    await page.getByRole("button", { name: "Verify this export" }).click();
    await expect.poll(() => page.getByTestId("verification").textContent()).toMatch(/intact\. \d+ events from genesis .* signatures verified/);

    // The same file with one event's data changed: the page says where the chain breaks.
    // Downloaded as a person would (the link is a blob: URL of the file the page fetched).
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-link").click()]);
    const exported = readFileSync((await download.path())!, "utf8");
    const lines = exported.trimEnd().split("\n");
    const victim = lines.findIndex((l) => l.includes('"kind":"event"') && l.includes("access_token.issued"));
    expect(victim).toBeGreaterThan(0);
    const event = JSON.parse(lines[victim]!);
    event.data.subject = "someone-else";
    lines[victim] = JSON.stringify(event);
    await page
      .getByLabel("Verify an export file")
      .setInputFiles({ name: "tampered.ndjson", mimeType: "application/x-ndjson", buffer: Buffer.from(lines.join("\n") + "\n") });
    await expect.poll(() => page.getByTestId("verification").textContent()).toContain(`tampered.ndjson: NOT intact`);
    expect(await page.getByTestId("verification").textContent()).toContain(`at sequence ${event.sequence}`);
    // Bytes that are not UTF-8 in a line (the page reads a non-ASCII file line by line): malformed.
    const bytes = Buffer.from(exported);
    bytes[bytes.indexOf('"subject"') + 2] = 0xff;
    await page.getByLabel("Verify an export file").setInputFiles({ name: "garbled.ndjson", mimeType: "application/x-ndjson", buffer: bytes });
    await expect.poll(() => page.getByTestId("verification").textContent()).toMatch(/garbled\.ndjson: NOT intact — malformed.*not UTF-8/);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("has no serious or critical accessibility violation on any page (axe-core)", async () => {
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
    await page.goto(served.url);
    await page.getByLabel("Access token").waitFor();
    await check("sign in");
    await signIn(page);
    await page.getByTestId("tenant-name").waitFor();
    await check("overview");
    // An agent, so that its own page is checked too.
    const created = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ query: `mutation { createAgent(input: { name: "axe-checked", type: "ci", tags: ["a11y"] }) { id } }` }),
    });
    expect(((await created.json()) as { errors?: unknown }).errors).toBeUndefined();
    for (const link of ["Agents", "Tasks", "Installations", "GitHub tokens", "Audit"]) {
      await page.getByRole("link", { name: link }).click();
      await page.getByRole("heading", { level: 1 }).first().waitFor();
      await check(link);
    }
    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByRole("link", { name: "axe-checked" }).click();
    await page.getByTestId("agent-history").waitFor();
    await check("an agent");
    await page.getByRole("button", { name: "Sign out" }).click();
    await signInWithToken(page, served.url, platformToken);
    await page.getByTestId("tenants").getByText("Default", { exact: true }).waitFor();
    await check("tenants");
    await context.close();
  });

  it("loads at most 200 KB of JavaScript, gzipped, on first load", () => {
    const html = readFileSync("console/dist/index.html", "utf8");
    const scripts = [...html.matchAll(/<script[^>]*src="\/console\/([^"]+)"/g)].map((m) => m[1]!);
    const preloads = [...html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="\/console\/([^"]+)"/g)].map((m) => m[1]!);
    const bytes = [...scripts, ...preloads].reduce((sum, file) => sum + gzipSync(readFileSync(path.join("console/dist", file))).length, 0);
    expect(scripts.length).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(200 * 1024);
  });

  it("shows a platform operator every tenant, creates one, changes its tier, suspends and resumes it, and no tenant's pages", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signInWithToken(page, served.url, platformToken);
    const tenants = page.getByTestId("tenants");
    await tenants.getByText("Default", { exact: true }).waitFor();
    expect(await page.getByRole("navigation", { name: "Pages" }).getByRole("link").allTextContents()).toEqual(["Tenants"]);
    await page.getByLabel("Id").fill("acme");
    await page.getByLabel("Name").fill("Acme Inc.");
    await page.getByRole("button", { name: "Create tenant" }).click();
    await tenants.getByText("Acme Inc.").waitFor();
    await page.getByLabel("Tier of acme").selectOption("pro");
    await expect.poll(async () => (await platformQuery("{ tenants { id tier } }")).tenants).toContainEqual({ id: "acme", tier: "pro" });
    // Suspend asks why first; the reason is shown and recorded; Resume lifts it.
    await page.getByRole("button", { name: "Suspend acme" }).click();
    const suspension = page.getByRole("form", { name: "Suspend acme" });
    await suspension.getByLabel("Reason").fill("unpaid invoice");
    await suspension.getByRole("button", { name: "Confirm suspension" }).click();
    await page.getByTestId("status-acme").filter({ hasText: "suspended (unpaid invoice)" }).waitFor();
    expect((await platformQuery("{ tenants { id status suspensionReason } }")).tenants).toContainEqual({
      id: "acme",
      status: "suspended",
      suspensionReason: "unpaid invoice",
    });
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-tenants.png"), fullPage: true });
    await page.getByRole("button", { name: "Resume acme" }).click();
    await page
      .getByTestId("status-acme")
      .filter({ hasText: /^active$/ })
      .waitFor();
    expect((await platformQuery("{ tenants { id status } }")).tenants).toContainEqual({ id: "acme", status: "active" });
    expect(problems).toEqual([]);
    await context.close();
  });

  it("serves GraphiQL from the installed package, with nothing from a CDN", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const outside: string[] = [];
    page.on("request", (request) => {
      if (!request.url().startsWith(served.url) && !request.url().startsWith("blob:") && !request.url().startsWith("data:")) outside.push(request.url());
    });
    await page.goto(`${served.url}/graphql`);
    await page.getByText("authorization").first().waitFor();
    expect(outside).toEqual([]);
    await context.close();
  });

  async function platformQuery(query: string): Promise<any> {
    const response = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${platformToken}` },
      body: JSON.stringify({ query }),
    });
    return ((await response.json()) as { data: unknown }).data;
  }

  async function codeOf(token: string): Promise<string | undefined> {
    const response = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "{ me { subject } }" }),
    });
    const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
    return body.errors?.[0]?.extensions?.code;
  }
});
