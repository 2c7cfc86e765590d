import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, launchBrowser, pageProblems, signInWithToken } from "../testkit/browser.ts";
import { runKeyplane } from "../testkit/keyplaneCli.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";

// The tenant's retention and legal hold in the console: `keyplane serve` on the embedded database
// (tenant `default`, free tier: at most 30 days; pruned ranges archived to AUDIT_ARCHIVE_DIR), a real
// Chromium. An admin sets 14 days, is refused 400 with the server's words next to the field and
// nothing changed, places a hold with a reason and releases it; a viewer sees it all, live, with no
// form. Screenshots as in console.test.ts.

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve("docs/images") : path.join(process.env.KEYPLANE_TEST_LOG_DIR ?? tmpdir(), "screenshots");

const require = createRequire(import.meta.url);

const REASON = "Litigation hold: Acme v. Example, case 2024-117";

describe.skipIf(!chromiumPath)("retention and legal hold in the console", () => {
  let dataDir: string;
  let served: Served;
  let adminToken: string;
  let viewerToken: string;
  let browser: Browser;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-retention-"));
    const env = { KEYPLANE_DATA_DIR: dataDir, AUDIT_ARCHIVE_DIR: path.join(dataDir, "archive") };
    // The first start makes tenant `default` and its admin token; the CLI cannot open the embedded
    // database beside serve: stop, mint a viewer, serve again.
    const first = await serveProcess("console-retention", env);
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
    served = await serveProcess("console-retention", env);
    browser = await launchBrowser();
    mkdirSync(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await killServedProcesses();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A GraphQL request of the admin's, beside the page. */
  async function asAdmin<T>(query: string): Promise<T> {
    const response = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ query }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown };
    expect(body.errors).toBeUndefined();
    return body.data!;
  }

  async function signIn(page: Page, token: string, subject: string) {
    await signInWithToken(page, served.url, token);
    await page.getByTestId("who").filter({ hasText: subject }).waitFor();
  }

  async function openRetention(page: Page) {
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Retention" }).click();
    await page.getByRole("heading", { level: 1, name: "Retention" }).waitFor();
    await page.getByTestId("retention-effective").waitFor();
  }

  /** What the page says in one of its places, exactly. */
  const shown = (page: Page, testId: string) => page.getByTestId(testId).textContent();

  /** Waits until the place says `text` (the page reads again after a change). */
  const says = (page: Page, testId: string, text: string) =>
    page
      .getByTestId(testId)
      .filter({ hasText: new RegExp(`^${text}$`) })
      .waitFor();

  async function axeViolations(page: Page): Promise<string[]> {
    await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
    return page.evaluate(async () => {
      const result = await (globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe.run();
      return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}, ${v.nodes.length})`);
    });
  }

  it("shows an admin the tier's period, sets 14 days, is refused 400 next to the field with nothing changed, places a legal hold and releases it", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signIn(page, adminToken, "bootstrap-admin");
    await openRetention(page);
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();

    // A new free tenant: as long as its tier allows, 30 days; nothing pruned yet; no hold.
    expect(await shown(page, "retention-effective")).toBe("30 days");
    expect(await shown(page, "retention-choice")).toBe("as long as the tier allows");
    expect(await shown(page, "retention-tier-max")).toBe("30 days");
    expect(await page.getByText("Most the free tier allows").count()).toBe(1);
    expect(await shown(page, "retention-archived")).toBe("yes");
    await page.getByText("Each range is written as a verifiable export file before it is pruned.").waitFor();
    expect(await shown(page, "retention-start")).toBe("Sequence 1");
    expect(await shown(page, "retention-pruned")).toBe("Nothing was pruned.");
    expect(await shown(page, "retention-hold")).toBe("None");
    expect(await page.getByTestId("legal-hold").count()).toBe(0);

    // 14 days.
    const form = page.getByRole("form", { name: "Set the retention period" });
    expect(await form.getByRole("radio", { name: "As long as the tier allows (30 days)" }).isChecked()).toBe(true);
    await form.getByRole("radio", { name: "For a number of days" }).check();
    await form.getByLabel("Number of days", { exact: true }).fill("14");
    await form.getByRole("button", { name: "Save retention period" }).click();
    await form.getByRole("status").filter({ hasText: "Saved: the audit log is kept for 14 days." }).waitFor();
    await says(page, "retention-effective", "14 days");
    expect(await shown(page, "retention-choice")).toBe("14 days");
    expect(await shown(page, "retention-tier-max")).toBe("30 days");

    // 400 days is more than the free tier keeps: the server's words, next to the field; nothing changed.
    const days = form.getByLabel("Number of days", { exact: true });
    await days.fill("400");
    await form.getByRole("button", { name: "Save retention period" }).click();
    const refusal = form.getByRole("alert");
    await refusal.waitFor();
    expect(await refusal.textContent()).toBe("Keyplane did not accept this input. days: the free tier keeps the log at most 30 days (BAD_USER_INPUT)");
    expect(await days.getAttribute("aria-invalid")).toBe("true");
    // The message is the field's description (aria-describedby names it).
    const describedBy = (await days.getAttribute("aria-describedby"))!.split(" ");
    expect(describedBy).toContain(await refusal.getAttribute("id"));
    expect(await form.getByRole("status").count()).toBe(0);
    expect(await shown(page, "retention-effective")).toBe("14 days");
    expect(await shown(page, "retention-choice")).toBe("14 days");
    // …and after a reload too: the server kept 14.
    await page.reload();
    await page.getByTestId("who").filter({ hasText: "bootstrap-admin" }).waitFor();
    await page.getByRole("heading", { level: 1, name: "Retention" }).waitFor();
    await says(page, "retention-effective", "14 days");
    expect(await shown(page, "retention-choice")).toBe("14 days");
    expect(await page.getByRole("form", { name: "Set the retention period" }).getByLabel("Number of days", { exact: true }).inputValue()).toBe("14");

    // A legal hold with its reason: shown first, prominently, and the hold form gives way to Release.
    const holdForm = page.getByRole("form", { name: "Place a legal hold" });
    await holdForm.getByLabel("Reason for a legal hold").fill(REASON);
    await holdForm.getByRole("button", { name: "Place legal hold" }).click();
    const hold = page.getByRole("region", { name: "Legal hold in place" });
    await hold.waitFor();
    await page.getByRole("status").filter({ hasText: "Legal hold placed: nothing of the log is pruned until it is released." }).waitFor();
    expect(await hold.getByTestId("legal-hold-reason").textContent()).toBe(REASON);
    expect(await hold.getByTestId("legal-hold-since").locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await shown(page, "retention-hold")).toBe("In place");
    expect(await page.getByRole("form", { name: "Place a legal hold" }).count()).toBe(0);
    // The hold comes before the figures on the page.
    const [holdTop, figuresTop] = await Promise.all([hold.boundingBox(), page.getByTestId("retention-effective").boundingBox()]);
    expect(holdTop!.y).toBeLessThan(figuresTop!.y);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-retention.png"), fullPage: true });

    // Release asks first: declined, the hold stays; confirmed, it is gone.
    const release = hold.getByRole("button", { name: "Release legal hold" });
    const declined = new Promise<string>((resolve) =>
      page.once("dialog", (dialog) => {
        resolve(dialog.message());
        void dialog.dismiss();
      }),
    );
    await release.click();
    expect(await declined).toContain("Release the legal hold?");
    expect(await page.getByTestId("legal-hold").count()).toBe(1);
    page.once("dialog", (dialog) => void dialog.accept());
    await release.click();
    await page.getByRole("status").filter({ hasText: "Legal hold released: retention prunes the log again from its next run." }).waitFor();
    await expect.poll(() => page.getByTestId("legal-hold").count()).toBe(0);
    expect(await page.getByText(REASON).count()).toBe(0);
    expect(await shown(page, "retention-hold")).toBe("None");
    await page.getByRole("form", { name: "Place a legal hold" }).waitFor();
    expect(await shown(page, "retention-effective")).toBe("14 days");

    // Each change is an event of the tenant's log; the refused 400 is none.
    const log = await asAdmin<{ auditLog: { nodes: { type: string; data: Record<string, unknown> }[] } }>(
      `{ auditLog(first: 10, filter: { types: ["tenant.retention_set", "tenant.legal_hold_set", "tenant.legal_hold_released"] }) { nodes { type data } } }`,
    );
    expect(log.auditLog.nodes.map((n) => n.type)).toEqual(["tenant.retention_set", "tenant.legal_hold_set", "tenant.legal_hold_released"]);
    expect(log.auditLog.nodes[0]!.data).toMatchObject({ days: 14, previousDays: null, tierMaxDays: 30 });
    expect(log.auditLog.nodes[1]!.data).toMatchObject({ reason: REASON });
    expect(problems).toEqual([]);
    await context.close();
  });

  it("shows a viewer the retention and the hold, live, with no form to change them", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signIn(page, viewerToken, "viewer@console");
    await openRetention(page);
    // A viewer receives the tenant's events: the page follows them.
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
    expect(await shown(page, "retention-effective")).toBe("14 days");
    expect(await shown(page, "retention-choice")).toBe("14 days");
    expect(await shown(page, "retention-tier-max")).toBe("30 days");
    expect(await shown(page, "retention-start")).toBe("Sequence 1");
    expect(await shown(page, "retention-hold")).toBe("None");
    expect(await page.getByRole("form").count()).toBe(0);
    expect(await page.getByRole("heading", { name: "Change retention" }).count()).toBe(0);

    // The admin changes both elsewhere: the open page shows it without a reload.
    await asAdmin(`mutation { setRetentionPolicy(days: 7) { id } }`);
    await says(page, "retention-effective", "7 days");
    await asAdmin(`mutation { setLegalHold(reason: ${JSON.stringify(REASON)}) { id } }`);
    const hold = page.getByRole("region", { name: "Legal hold in place" });
    await hold.waitFor();
    expect(await hold.getByTestId("legal-hold-reason").textContent()).toBe(REASON);
    expect(await hold.getByRole("button").count()).toBe(0);
    expect(await page.getByRole("button", { name: "Release legal hold" }).count()).toBe(0);
    expect(await page.getByRole("form").count()).toBe(0);
    expect(await page.getByRole("alert").count()).toBe(0);

    // And the API refuses the viewer's changes anyway.
    const refused = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${viewerToken}` },
      body: JSON.stringify({ query: "mutation { releaseLegalHold { id } }" }),
    });
    const answer = (await refused.json()) as { errors?: { extensions?: { code?: string } }[] };
    expect(answer.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("has no serious or critical accessibility violation (axe-core): an admin's page with a hold and a refusal, and a viewer's", async () => {
    // axe is injected through the DevTools protocol: the console's own policy admits no other script.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    await signIn(page, adminToken, "bootstrap-admin");
    await openRetention(page);
    await page.getByRole("region", { name: "Legal hold in place" }).waitFor();
    expect(await axeViolations(page), "an admin's page with a hold").toEqual([]);
    const form = page.getByRole("form", { name: "Set the retention period" });
    await form.getByLabel("Number of days", { exact: true }).fill("400");
    await form.getByRole("button", { name: "Save retention period" }).click();
    await form.getByRole("alert").waitFor();
    expect(await axeViolations(page), "a refused period").toEqual([]);
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Release legal hold" }).click();
    await page.getByRole("form", { name: "Place a legal hold" }).waitFor();
    expect(await axeViolations(page), "an admin's page without a hold").toEqual([]);
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, viewerToken, "viewer@console");
    await openRetention(page);
    expect(await axeViolations(page), "a viewer's page").toEqual([]);
    await context.close();
  });
});
