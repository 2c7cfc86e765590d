import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, launchBrowser, pageProblems, signInWithToken } from "../testkit/browser.ts";
import { startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess } from "../testkit/servedProcess.ts";

// Installing from the console: `keyplane serve` configured with the local fakes of Slack, Atlassian
// and GitHub (test/fakes/), a real Chromium that follows the provider's consent and comes back to
// the console, then suspends, resumes and revokes the installation there.

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve("docs/images") : path.join(process.env.KEYPLANE_TEST_LOG_DIR ?? tmpdir(), "screenshots");

describe.skipIf(!chromiumPath)("installations in the console", () => {
  let world: ProviderWorld;
  let dataDir: string;
  let adminToken: string;
  let browser: Browser;

  beforeAll(async () => {
    world = await startProviderWorld();
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-installs-"));
    // The providers send the browser back to KEYPLANE_PUBLIC_URL: serve on its port.
    await serveProcess("console-installs", { ...world.env, KEYPLANE_DATA_DIR: dataDir }, { port: Number(world.env.PORT) });
    adminToken = readFileSync(path.join(dataDir, "admin-token"), "utf8").trim();
    registerSecret(adminToken);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await killServedProcesses();
    await world?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("installs Slack and GitHub through their consent and back, shows them with their refresh health, then suspends, resumes and revokes one", async () => {
    const page = await browser.newPage();
    const problems = pageProblems(page);
    page.on("dialog", (dialog) => void dialog.accept());
    await signInWithToken(page, world.publicUrl, adminToken);
    await page.getByRole("link", { name: "Installations" }).click();
    await page.getByText("No installation yet.").waitFor();

    await page.getByRole("button", { name: "Install Slack" }).click();
    // The fake's consent sends the browser to Keyplane's callback, which sends it back here.
    await page.getByTestId("install-outcome").filter({ hasText: "slack: created" }).waitFor();
    expect(new URL(page.url()).search).toBe("");
    const row = page.getByTestId("installations").getByRole("row").filter({ hasText: "slack" });
    await row.getByText("active").waitFor();
    expect(await row.textContent()).toContain("Fake Workspace");
    // GitHub too: the app's installation page, then its setup URL (Keyplane's callback), then here.
    world.github.setNextInstall({
      account: { login: "acme", type: "Organization" },
      repositories: ["api", "web-app"],
      permissions: { contents: "write", pull_requests: "write", metadata: "read" },
    });
    await page.getByRole("button", { name: "Install GitHub" }).click();
    await page.getByTestId("install-outcome").filter({ hasText: "github: created" }).waitFor();
    await page.getByTestId("installations").getByRole("row").filter({ hasText: "github" }).getByText("active").waitFor();
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-installations.png"), fullPage: true });

    await row.getByRole("button", { name: "Suspend" }).click();
    await row.getByText("suspended").waitFor();
    await row.getByRole("button", { name: "Resume" }).click();
    await row.getByText("active").waitFor();
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByText("revoked").waitFor();
    expect(await row.getByRole("button").count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });

  it("sets a GitHub token policy, refuses a bad one at its field, lists a token handed out by fingerprint, revokes it, and deletes the policy", async () => {
    const page = await browser.newPage();
    const problems = pageProblems(page);
    page.on("dialog", (dialog) => void dialog.accept());
    await signInWithToken(page, world.publicUrl, adminToken);
    await page.getByRole("link", { name: "GitHub tokens" }).click();
    const form = page.getByRole("form", { name: "Set a token policy" });
    await form.getByLabel("Name").fill("ci-read");
    await form.getByLabel("GitHub App").fill("default");
    await form.getByLabel("Repositories").fill("acme/api, acme/web-*");
    await form.getByLabel("Permissions (JSON)").fill('{"contents": "read"');
    await form.getByLabel("Roles").fill("service, admin");
    await form.getByRole("button", { name: "Save policy" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/^Permissions are not JSON/);
    await form.getByLabel("Permissions (JSON)").fill('{"contents": "read", "pull_requests": "write"}');
    await form.getByRole("button", { name: "Save policy" }).click();
    const policy = page.getByTestId("token-policies").getByRole("row").filter({ hasText: "ci-read" });
    await policy.getByText("acme/api, acme/web-*").waitFor();
    expect(await policy.textContent()).toContain("service");
    // An app Keyplane does not have: refused by the API, in words with its code.
    await form.getByLabel("Name").fill("other");
    await form.getByLabel("GitHub App").fill("nope");
    await form.getByRole("button", { name: "Save policy" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("(BAD_USER_INPUT)");
    await page.getByText("None.").waitFor();

    // A token the policy allows, asked for through the API (by a workload, as it would be): the page
    // lists it by fingerprint, never the token, and revokes it at GitHub.
    const issued = await fetch(`${world.publicUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({
        query: `mutation { issueGitHubToken(input: { app: "default", repository: "acme/api", permissions: { contents: "read" } }) { token fingerprint } }`,
      }),
    });
    const { token, fingerprint } = ((await issued.json()) as { data: { issueGitHubToken: { token: string; fingerprint: string } } }).data.issueGitHubToken;
    registerSecret(token);
    expect(world.github.isInstallationTokenValid(token)).toBe(true);
    await page.reload();
    const tokenRow = page.getByTestId("issued-tokens").getByRole("row").filter({ hasText: fingerprint });
    await tokenRow.getByText("default/ci-read").waitFor();
    expect(await page.content()).not.toContain(token);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-github-tokens.png"), fullPage: true });
    await tokenRow.getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => tokenRow.getByRole("button", { name: "Revoke" }).count()).toBe(0);
    expect(world.github.isInstallationTokenValid(token)).toBe(false);
    await policy.getByRole("button", { name: "Delete" }).click();
    await expect.poll(() => page.getByTestId("token-policies").getByRole("row").count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });
});
