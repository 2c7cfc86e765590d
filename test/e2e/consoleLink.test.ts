import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, launchBrowser, pageProblems } from "../testkit/browser.ts";
import { killKeyplaneProcesses, runKeyplaneProcess } from "../testkit/keyplaneCli.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";

// `keyplane console link` as an operator runs it: its own process, on the embedded database's data dir
// while `keyplane serve` holds that database, and the link it prints opened in a real Chromium.

describe.skipIf(!chromiumPath)("a one-time sign-in link for the console", () => {
  let dataDir: string;
  let served: Served;
  let browser: Browser;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-link-"));
    served = await serveProcess("console-link", { KEYPLANE_DATA_DIR: dataDir });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await killKeyplaneProcesses();
    await killServedProcesses();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("is printed by the CLI beside a running serve, signs in once, leaves no code in the address bar, and is refused in words the second time", async () => {
    // The same data dir (signing key, embedded database) and port as the server: no KEYPLANE_PUBLIC_URL,
    // so the link names http://localhost:<PORT>.
    const cli = await runKeyplaneProcess(
      ["console", "link", "--tenant", "default", "--sub", "linked-admin"],
      { KEYPLANE_DATA_DIR: dataDir, PORT: String(served.port) },
      {
        timeoutMs: 50_000,
      },
    );
    expect(cli.code, cli.err).toBe(0);
    const link = cli.out.trim();
    expect(link).toMatch(new RegExp(`^http://localhost:${served.port}/console/#code=[A-Za-z0-9._-]+$`));
    registerSecret(link.split("#code=")[1]);
    expect(cli.err).toMatch(/signs in once, as linked-admin \(admin\) in tenant default; it expires at /);
    // serve still holds its database and answers.
    expect((await fetch(`${served.url}/readyz`)).status).toBe(200);

    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    const requested: string[] = [];
    page.on("request", (request) => requested.push(`${request.url()} ${request.headers().referer ?? ""}`));
    await page.goto(link);
    await page.getByTestId("who").filter({ hasText: "linked-admin" }).waitFor();
    expect(await page.getByTestId("who").textContent()).toBe("linked-admin · default · admin");
    expect(page.url()).not.toContain("#code");
    expect(page.url()).not.toContain("code=");
    expect(await page.evaluate(() => location.hash)).toBe("");
    // The code went to the server only in the body of redeemSignInCode: no URL or Referer carried it.
    expect(requested.filter((r) => r.includes(link.split("#code=")[1]!))).toEqual([]);
    // The tab keeps a session, never the code.
    const stored = await page.evaluate(() => sessionStorage.getItem("keyplane.session"));
    const session = JSON.parse(stored!) as { accessToken: string; refreshToken: string };
    registerSecret(session.accessToken);
    registerSecret(session.refreshToken);
    expect(stored).not.toContain(link.split("#code=")[1]);
    expect(problems).toEqual([]);
    await context.close();

    // The same link again, in another browser: refused, and said so in words.
    const again = await browser.newContext();
    const second = await again.newPage();
    await second.goto(link);
    await expect
      .poll(() => second.getByRole("alert").textContent(), { timeout: 15_000 })
      .toBe(
        "The sign-in link did not work: this sign-in link was already used or has expired. Ask for a new one (keyplane console link), or paste a token. (UNAUTHENTICATED)",
      );
    expect(second.url()).not.toContain("#code");
    await second.getByLabel("Access token").waitFor();
    expect(await second.evaluate(() => sessionStorage.getItem("keyplane.session"))).toBeNull();
    await again.close();
  });
});
