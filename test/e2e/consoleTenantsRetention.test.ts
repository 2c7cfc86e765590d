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

// A platform operator's Tenants page shows each tenant's retention and legal hold, and changes them:
// `keyplane serve` on the embedded database (tenant `default`, free tier: 30 days), an enterprise
// tenant (unlimited), a real Chromium. The operator places a hold with its reason on `default` (the
// tenant's own log records it: read with its admin token), releases it once confirmed, sets a period
// and is refused one longer than the tier allows. Screenshots as in console.test.ts.

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve("docs/images") : path.join(process.env.KEYPLANE_TEST_LOG_DIR ?? tmpdir(), "screenshots");

const require = createRequire(import.meta.url);

const REASON = "Litigation hold: Acme v. Example, case 2024-117";

describe.skipIf(!chromiumPath)("retention and legal holds on the operator's Tenants page", () => {
  let dataDir: string;
  let served: Served;
  let adminToken: string;
  let platformToken: string;
  let browser: Browser;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-tenants-retention-"));
    // A platform operator's token, minted before serve holds the embedded database.
    const minted = await runKeyplane(["token", "mint", "--role", "platform", "--sub", "ops@platform"], { KEYPLANE_DATA_DIR: dataDir });
    expect(minted.code, minted.err).toBe(0);
    platformToken = minted.out.trim();
    registerSecret(platformToken);
    served = await serveProcess("console-tenants-retention", { KEYPLANE_DATA_DIR: dataDir });
    adminToken = readFileSync(path.join(dataDir, "admin-token"), "utf8").trim();
    registerSecret(adminToken);
    await graphql(platformToken, `mutation { createTenant(input: { id: "globex", name: "Globex Corp.", tier: enterprise }) { id } }`);
    browser = await launchBrowser();
    mkdirSync(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await killServedProcesses();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function graphql<T>(token: string, query: string): Promise<T> {
    const response = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown };
    expect(body.errors).toBeUndefined();
    return body.data!;
  }

  type Retention = { days: number | null; effectiveDays: number | null; legalHold: { reason: string; since: string } | null };
  const retentionOf = async (id: string) =>
    (
      await graphql<{ tenants: { id: string; retention: Retention }[] }>(
        platformToken,
        "{ tenants { id retention { days effectiveDays legalHold { reason since } } } }",
      )
    ).tenants.find((t) => t.id === id)!.retention;

  /** The events of these types in tenant `default`'s log, read by its admin. */
  const defaultLog = async (types: string[]) =>
    (
      await graphql<{ auditLog: { nodes: { type: string; actor: string; data: Record<string, unknown> }[] } }>(
        adminToken,
        `{ auditLog(first: 20, filter: { types: ${JSON.stringify(types)} }) { nodes { type actor data } } }`,
      )
    ).auditLog.nodes;

  async function openTenants(page: Page) {
    await signInWithToken(page, served.url, platformToken);
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    await page.getByTestId("retention-globex").waitFor();
  }

  const shown = (page: Page, testId: string) => page.getByTestId(testId).textContent();

  async function axeViolations(page: Page): Promise<string[]> {
    await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
    return page.evaluate(async () => {
      const result = await (globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe.run();
      return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}, ${v.nodes.length})`);
    });
  }

  it("shows each tenant's retention in words, places a legal hold with its reason (in the row, in the tenant's log) and releases it once confirmed", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await openTenants(page);

    // Free: 30 days, the tier's; enterprise: unlimited. No hold anywhere.
    expect(await page.getByRole("columnheader").allTextContents()).toEqual([
      "Id",
      "Name",
      "Tier",
      "Status",
      "Created",
      "Retention",
      "Legal hold",
      "Suspension",
    ]);
    expect(await shown(page, "retention-default")).toBe("30 days");
    expect(await shown(page, "retention-source-default")).toBe("(the free tier's)");
    expect(await shown(page, "retention-globex")).toBe("unlimited");
    expect(await shown(page, "retention-source-globex")).toBe("(the enterprise tier's)");
    expect(await shown(page, "legal-hold-default")).toBe("none");
    expect(await shown(page, "legal-hold-globex")).toBe("none");

    // Place asks the reason first (required); the hold is then shown, marked, in the tenant's row only.
    await page.getByRole("button", { name: "Place legal hold on default" }).click();
    const holdForm = page.getByRole("form", { name: "Legal hold on default" });
    const reason = holdForm.getByLabel("Reason");
    expect(await reason.getAttribute("required")).not.toBeNull();
    await reason.fill(REASON);
    await holdForm.getByRole("button", { name: "Place legal hold" }).click();
    await page.getByRole("status").filter({ hasText: "Legal hold placed on default: nothing of its log is pruned until it is released." }).waitFor();
    const row = page.locator('tr[data-tenant="default"]');
    await row.getByTestId("legal-hold-reason-default").filter({ hasText: REASON }).waitFor();
    const held = row.getByTestId("legal-hold-default");
    expect(await held.locator(".hold-badge").textContent()).toBe("⚖ On hold");
    expect(await held.locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await held.textContent()).toMatch(/since /);
    expect(await row.getAttribute("class")).toBe("held");
    expect(await page.getByRole("form", { name: "Legal hold on default" }).count()).toBe(0);
    expect(await shown(page, "legal-hold-globex")).toBe("none");
    expect(await page.locator('tr[data-tenant="globex"]').getAttribute("class")).toBeNull();
    // The hold stops pruning; the period itself is unchanged.
    expect(await shown(page, "retention-default")).toBe("30 days");
    const placed = await retentionOf("default");
    expect(placed.legalHold?.reason).toBe(REASON);
    expect(await held.locator("time").getAttribute("datetime")).toBe(placed.legalHold!.since);
    expect((await retentionOf("globex")).legalHold).toBeNull();
    const setEvents = await defaultLog(["tenant.legal_hold_set"]);
    expect(setEvents).toHaveLength(1);
    expect(setEvents[0]!.data).toMatchObject({ tenantId: "default", reason: REASON });
    expect(setEvents[0]!.actor).toContain("ops@platform");
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-tenants-retention.png"), fullPage: true });

    // Release asks first: declined, the hold stays; confirmed, it is gone.
    const release = page.getByRole("button", { name: "Release legal hold on default" });
    const declined = new Promise<string>((resolve) =>
      page.once("dialog", (dialog) => {
        resolve(dialog.message());
        void dialog.dismiss();
      }),
    );
    await release.click();
    expect(await declined).toContain("Release the legal hold on default?");
    expect(await page.getByTestId("legal-hold-reason-default").textContent()).toBe(REASON);
    expect((await retentionOf("default")).legalHold?.reason).toBe(REASON);
    page.once("dialog", (dialog) => void dialog.accept());
    await release.click();
    await page.getByRole("status").filter({ hasText: "Legal hold on default released: retention prunes its log again from its next run." }).waitFor();
    await page
      .getByTestId("legal-hold-default")
      .filter({ hasText: /^none$/ })
      .waitFor();
    expect(await page.getByText(REASON).count()).toBe(0);
    expect(await row.getAttribute("class")).toBeNull();
    expect((await retentionOf("default")).legalHold).toBeNull();
    expect((await defaultLog(["tenant.legal_hold_set", "tenant.legal_hold_released"])).map((e) => e.type)).toEqual([
      "tenant.legal_hold_set",
      "tenant.legal_hold_released",
    ]);
    // The page is ready for another hold.
    await page.getByRole("button", { name: "Place legal hold on default" }).waitFor();
    expect(problems).toEqual([]);
    await context.close();
  });

  it("sets a tenant's period, is refused one longer than its tier allows (next to the field, nothing changed), and goes back to the tier's", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await openTenants(page);

    // 14 days for default.
    await page.getByRole("button", { name: "Change retention of default" }).click();
    let form = page.getByRole("form", { name: "Retention of default" });
    expect(await form.getByText("empty: as long as the free tier allows (30 days)").count()).toBe(1);
    await form.getByLabel("Days").fill("14");
    await form.getByRole("button", { name: "Save retention" }).click();
    await page.getByRole("status").filter({ hasText: "Retention of default: its audit log is kept for 14 days." }).waitFor();
    await page
      .getByTestId("retention-default")
      .filter({ hasText: /^14 days$/ })
      .waitFor();
    expect(await shown(page, "retention-source-default")).toBe("(chosen; the free tier allows 30 days)");
    expect(await retentionOf("default")).toMatchObject({ days: 14, effectiveDays: 14 });

    // 400 days: more than the free tier keeps. The server's words next to the field; nothing changed.
    await page.getByRole("button", { name: "Change retention of default" }).click();
    form = page.getByRole("form", { name: "Retention of default" });
    const days = form.getByLabel("Days");
    expect(await days.inputValue()).toBe("14");
    await days.fill("400");
    await form.getByRole("button", { name: "Save retention" }).click();
    const refusal = form.getByRole("alert");
    await refusal.waitFor();
    expect(await refusal.textContent()).toBe("Keyplane did not accept this input. days: the free tier keeps the log at most 30 days (BAD_USER_INPUT)");
    expect(await days.getAttribute("aria-invalid")).toBe("true");
    expect((await days.getAttribute("aria-describedby"))!.split(" ")).toContain(await refusal.getAttribute("id"));
    expect(await shown(page, "retention-default")).toBe("14 days");
    expect(await retentionOf("default")).toMatchObject({ days: 14, effectiveDays: 14 });
    expect(await axeViolations(page), "a refused period").toEqual([]);

    // Empty: as long as the tier allows again.
    await days.fill("");
    await form.getByRole("button", { name: "Save retention" }).click();
    await page.getByRole("status").filter({ hasText: "Retention of default: its audit log is kept for 30 days." }).waitFor();
    await page
      .getByTestId("retention-source-default")
      .filter({ hasText: /^\(the free tier's\)$/ })
      .waitFor();
    expect(await shown(page, "retention-default")).toBe("30 days");
    expect(await retentionOf("default")).toMatchObject({ days: null, effectiveDays: 30 });

    // Enterprise: any number of days (its tier has no maximum).
    await page.getByRole("button", { name: "Change retention of globex" }).click();
    form = page.getByRole("form", { name: "Retention of globex" });
    expect(await form.getByText("empty: as long as the enterprise tier allows (unlimited)").count()).toBe(1);
    await form.getByLabel("Days").fill("3650");
    await form.getByRole("button", { name: "Save retention" }).click();
    await page
      .getByTestId("retention-globex")
      .filter({ hasText: /^3650 days$/ })
      .waitFor();
    expect(await shown(page, "retention-source-globex")).toBe("(chosen; the enterprise tier allows any period)");

    // Both changes of default are in its log; the refusal is none.
    const events = await defaultLog(["tenant.retention_set"]);
    expect(events.map((e) => e.data)).toEqual([expect.objectContaining({ days: 14 }), expect.objectContaining({ days: null })]);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("has no serious or critical accessibility violation (axe-core): a tenant on hold, an open hold form", async () => {
    // axe is injected through the DevTools protocol: the console's own policy admits no other script.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    await graphql(platformToken, `mutation { setLegalHold(tenantId: "globex", reason: ${JSON.stringify(REASON)}) { id } }`);
    await openTenants(page);
    await page.getByTestId("legal-hold-reason-globex").waitFor();
    expect(await axeViolations(page), "a tenant on hold").toEqual([]);
    await page.getByRole("button", { name: "Place legal hold on default" }).click();
    await page.getByRole("form", { name: "Legal hold on default" }).waitFor();
    expect(await axeViolations(page), "an open hold form").toEqual([]);
    await context.close();
  });
});
