import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, launchBrowser, pageProblems, signInWithToken } from "../testkit/browser.ts";
import { killKeyplaneProcesses, runKeyplane, spawnKeyplane, type KeyplaneProcess } from "../testkit/keyplaneCli.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";
import { waitFor } from "../testkit/waitFor.ts";

// The console's Agents and Tasks pages as a person uses them: `keyplane serve` on the embedded
// database, a real Chromium, the admin token. An enrollment key made in the page enrolls a real
// `keyplane agent run`, which shows up online in the open page without a reload; an echo task
// dispatched from the Tasks page completes live, and an http-check is seen in progress, then
// completed. A viewer sees agents change live but no buttons to change anything, and the API
// refuses the viewer's mutations anyway. Screenshots as in console.test.ts.

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? path.resolve("docs/images") : path.join(process.env.KEYPLANE_TEST_LOG_DIR ?? tmpdir(), "screenshots");

describe.skipIf(!chromiumPath)("the console's Agents and Tasks pages in a browser", () => {
  let dataDir: string;
  let stateDir: string;
  let served: Served;
  let adminToken: string;
  let viewerToken: string;
  let browser: Browser;
  let agent: KeyplaneProcess | undefined;
  let agentId: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-agents-"));
    stateDir = mkdtempSync(path.join(tmpdir(), "keyplane-console-agent-state-"));
    // The first start makes tenant `default` and its admin token. No mutation issues a person's
    // token, and the CLI cannot open the embedded database beside serve: stop, mint a viewer, serve again.
    const first = await serveProcess("console-agents", { KEYPLANE_DATA_DIR: dataDir });
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
    served = await serveProcess("console-agents", { KEYPLANE_DATA_DIR: dataDir });
    browser = await launchBrowser();
    mkdirSync(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    if (agent) {
      agent.kill("SIGTERM");
      await Promise.race([agent.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    await killKeyplaneProcesses();
    await browser?.close();
    await killServedProcesses();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  async function signIn(page: Page, token: string, subject: string) {
    await signInWithToken(page, served.url, token);
    await page.getByTestId("who").filter({ hasText: subject }).waitFor();
  }

  /** Moves to a page with the console's own links (History API): the document stays the same. */
  async function open(page: Page, title: "Agents" | "Tasks") {
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: title }).click();
    await page.getByRole("heading", { level: 1, name: title }).waitFor();
  }

  it("enrolls a machine with a key made in the page, shows it online live, and runs an echo task to completion live", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = pageProblems(page);
    await signIn(page, adminToken, "bootstrap-admin");
    await open(page, "Agents");
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
    // Set once: still there at the end only if the page was never reloaded.
    await page.evaluate(() => Object.assign(window, { sameDocument: true }));
    const sameDocument = () => page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument === true);

    // An agent made by hand; a config that is JSON but not an object is refused next to its field, with the code.
    const create = page.getByRole("form", { name: "Create an agent" });
    await create.getByLabel("Name").fill("support-bot");
    await create.getByLabel("Type").fill("support-bot");
    await create.getByLabel("Tags").fill("eu, prod");
    await create.getByLabel("Config (JSON object)").fill("[1, 2]");
    await create.getByRole("button", { name: "Create agent" }).click();
    await expect.poll(() => create.getByRole("alert").textContent()).toMatch(/config.*\(BAD_USER_INPUT\)/);
    await create.getByLabel("Config (JSON object)").fill('{ "greeting": "hello" }');
    await create.getByRole("button", { name: "Create agent" }).click();
    const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "support-bot" }) });
    await row.getByText("pending").waitFor();
    await row.getByRole("button", { name: "Publish support-bot" }).click();
    await row.getByText("published").waitFor();

    // A key, shown once with the command that uses it.
    const keys = page.getByTestId("enrollment-keys");
    await keys.getByLabel("Description").fill("console e2e");
    await keys.getByRole("button", { name: "Create enrollment key" }).click();
    const key = (await page.getByTestId("enrollment-key").textContent())!;
    registerSecret(key);
    expect(key).toMatch(/^kpe_[A-Za-z0-9]+_\S+$/);
    expect(await page.getByTestId("enrollment-command").textContent()).toBe(`keyplane agent run --server ${served.url} --key ${key}`);
    const prefix = key.split("_")[1]!;
    await page.getByTestId(`key-state-${prefix}`).filter({ hasText: "active" }).waitFor();

    agent = spawnKeyplane(
      ["agent", "run", "--server", served.url, "--key", key, "--state-dir", stateDir],
      { HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "debug" },
      { log: { command: "console-agents", name: "agent", streams: "both" } },
    );
    const running = agent;
    const credential = await waitFor(
      "the agent to enroll",
      () => {
        const file = path.join(stateDir, "credential.json");
        return existsSync(file) && (JSON.parse(readFileSync(file, "utf8")) as { agentId: string; accessToken: string; refreshToken: string });
      },
      30_000,
      running.err,
    );
    registerSecret(credential.accessToken);
    registerSecret(credential.refreshToken);
    agentId = credential.agentId;

    // Online in the open page, from tenantEvents: no reload, no polling.
    await page.getByTestId(`connection-${agentId}`).filter({ hasText: "online" }).waitFor({ timeout: 30_000 });
    await page.getByTestId(`key-state-${prefix}`).filter({ hasText: "used up" }).waitFor();
    expect(await sameDocument()).toBe(true);
    await page.getByRole("button", { name: "Done (forget the key)" }).click();
    await expect.poll(() => page.getByTestId("enrollment-key").count()).toBe(0);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-agents.png"), fullPage: true });

    // The agent's own page: what its machine reported, and its events, live.
    await page.getByTestId(`agent-${agentId}`).getByRole("link").click();
    expect(new URL(page.url()).pathname).toBe(`/console/agents/${agentId}`);
    const host = page.getByTestId("agent-host");
    await host.waitFor();
    expect(await host.textContent()).toContain(`hostname${os.hostname()}`);
    expect(await host.textContent()).toContain(`arch${process.arch}`);
    await page.getByTestId("agent-connection").filter({ hasText: "online" }).waitFor();
    const history = page.getByTestId("agent-history");
    await history.getByRole("cell", { name: "agent.enrolled", exact: true }).waitFor();
    await history.getByRole("cell", { name: "agent.online", exact: true }).waitFor();
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-agent.png"), fullPage: true });
    await page.getByRole("link", { name: "← All agents" }).click();
    await page.getByTestId(`connection-${agentId}`).waitFor();

    // An echo task from the Tasks page, followed live to its end.
    await open(page, "Tasks");
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
    const dispatch = page.getByRole("form", { name: "Dispatch a task" });
    await dispatch.getByLabel("Agent").selectOption(agentId);
    await dispatch.getByLabel("Kind").fill("echo");
    await dispatch.getByLabel("Input (JSON)").fill('{ "from": "the console" }');
    await dispatch.getByRole("button", { name: "Dispatch" }).click();
    const taskId = (await page.getByTestId("dispatched").getAttribute("data-task-id"))!;
    await page.getByTestId(`task-status-${taskId}`).filter({ hasText: "completed" }).waitFor({ timeout: 30_000 });
    expect(JSON.parse((await page.getByTestId(`task-result-${taskId}`).textContent())!)).toEqual({ from: "the console" });

    // An http-check against a server that answers only once the page shows the task in progress:
    // claimed, then progress, then completed, each seen live.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const target = http.createServer((_req, res) => void held.then(() => res.writeHead(204).end()));
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}/health`;
      await dispatch.getByLabel("Kind").fill("http-check");
      await dispatch.getByLabel("Input (JSON)").fill(JSON.stringify({ url }));
      await dispatch.getByRole("button", { name: "Dispatch" }).click();
      await expect.poll(() => page.getByTestId("dispatched").getAttribute("data-task-id")).not.toBe(taskId);
      const checkId = (await page.getByTestId("dispatched").getAttribute("data-task-id"))!;
      await page.getByTestId(`task-status-${checkId}`).filter({ hasText: "in progress" }).waitFor({ timeout: 30_000 });
      release();
      await page.getByTestId(`task-status-${checkId}`).filter({ hasText: "completed" }).waitFor({ timeout: 30_000 });
      expect(JSON.parse((await page.getByTestId(`task-result-${checkId}`).textContent())!)).toMatchObject({ status: 204, ok: true });
      expect(await page.getByTestId(`task-trail-${checkId}`).textContent()).toMatch(/in progress → completed$/);
    } finally {
      release();
      await new Promise((resolve) => target.close(resolve));
    }
    expect(await sameDocument()).toBe(true);
    await page.screenshot({ path: path.join(SCREENSHOTS, "console-tasks.png"), fullPage: true });

    // A read that a newer one supersedes (an event while urql reads the list again after a mutation)
    // is cancelled by urql: not a failure.
    expect(problems.filter((p) => !/^request failed: \S+\/graphql\?query=\S+ net::ERR_ABORTED/.test(p))).toEqual([]);
    await context.close();
  });

  it("a viewer sees agents change live, no button that changes anything, and the API refuses its mutations (FORBIDDEN)", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, viewerToken, "viewer@console");
    await open(page, "Agents");
    await page.getByTestId(`connection-${agentId}`).waitFor();
    // A viewer receives the events of the areas it reads: an agent an admin creates elsewhere appears
    // in the viewer's open page without a reload.
    await page
      .getByTestId("live-state")
      .filter({ hasText: /^Live$/ })
      .waitFor();
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    const created = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ query: `mutation { createAgent(input: { name: "seen-live-by-a-viewer", type: "ci" }) { id } }` }),
    });
    const createdId = ((await created.json()) as { data: { createAgent: { id: string } } }).data.createAgent.id;
    await page.getByTestId(`agent-${createdId}`).waitFor();
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    for (const name of [/create/i, /delete/i, /publish/i, /revoke/i, /prune/i, /edit/i]) expect(await page.getByRole("button", { name }).count()).toBe(0);
    expect(await page.getByRole("form").count()).toBe(0);

    await open(page, "Tasks");
    await page.getByTestId("tasks-table").waitFor();
    expect(await page.getByRole("button", { name: "Dispatch" }).count()).toBe(0);

    // Forced: the page's own session calls the API directly.
    const answers = await page.evaluate(async (id) => {
      const { accessToken } = JSON.parse(sessionStorage.getItem("keyplane.session")!) as { accessToken: string };
      const call = async (query: string) => {
        const response = await fetch("/graphql", {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${accessToken}` },
          body: JSON.stringify({ query, variables: { id } }),
        });
        const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
        return body.errors?.[0]?.extensions?.code;
      };
      return [
        await call(`mutation { createAgent(input: { name: "sneaky", type: "x" }) { id } }`),
        await call(`mutation ($id: ID!) { deleteAgent(id: $id) }`),
        await call(`mutation { createEnrollmentKey(input: {}) { key } }`),
      ];
    }, agentId);
    expect(answers).toEqual(["FORBIDDEN", "FORBIDDEN", "FORBIDDEN"]);
    await context.close();
  });
});
