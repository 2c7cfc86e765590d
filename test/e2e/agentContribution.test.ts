import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killKeyplaneProcesses, logLines, runKeyplane, spawnKeyplane, type KeyplaneProcess } from "../testkit/keyplaneCli.ts";
import { browseInstall, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";
import { SKIPPED_WITHOUT_SOFTHSM, softHsmAvailable, softHsmToken } from "../testkit/softHsm.ts";
import { createScratchDatabase, onPostgres, type ScratchDatabase } from "../testkit/testDatabase.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Issue 22, done when: an agent enrolled with `keyplane agent run` is dispatched a contribution task
// that forks a repository, commits to a branch of the fork and opens a pull request under its own
// linked GitHub identity (linked with `keyplane agent link-github`, a person's browser played by the
// test), with every step in the tenant's log. Real processes: `keyplane serve` with the GitHub fake
// as its GitHub, and the agent and the link command as an operator runs them.

const scratch = scratchDirectory("keyplane-contribution-");
const FAST = ["--heartbeat-seconds", "0.5", "--poll-seconds", "1", "--reconnect-max-seconds", "0.5"];
const unique = () => randomBytes(4).toString("hex");
const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Record<string, any>;
/** GitHub's token prefixes: user, refresh, installation, OAuth, personal. */
const GITHUB_TOKEN = /gh[usrop]_[A-Za-z0-9]/;

let world: ProviderWorld;
let server: Served;
let database: ScratchDatabase | undefined;
let admin: string;
let editor: string;

async function gql(token: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: any; errors?: Array<{ message: string }> };
  if (body.errors?.length) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`);
  return body.data;
}

beforeAll(async () => {
  world = await startProviderWorld();
  const dataDir = scratch.fresh();
  // On PostgreSQL, the CLI and the server share the database and so one signing key.
  const storage: Record<string, string> = { KEYPLANE_DATA_DIR: dataDir, KEYPLANE_ENCRYPTION_KEYS: world.env.KEYPLANE_ENCRYPTION_KEYS! };
  if (onPostgres) {
    database = await createScratchDatabase("kp_contribution");
    storage.DATABASE_URL = database.url;
    storage.KEYPLANE_SIGNING_KEY = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  }
  const env = { NODE_ENV: "test", LOG_LEVEL: "warn", ...storage };
  const cli = async (args: string[]) => {
    const r = await runKeyplane(args, env, { command: "contribution", name: "cli" });
    expect(r.code, r.err).toBe(0);
    return r.out.trim();
  };
  if (onPostgres) await cli(["migrate"]);
  await cli(["tenant", "create", "--id", "acme", "--name", "Acme"]);
  const mint = async (role: string, sub: string) => {
    const token = await cli(["token", "mint", "--tenant", "acme", "--role", role, "--sub", sub, "--ttl", "7200"]);
    registerSecret(token);
    return token;
  };
  admin = await mint("admin", "admin@acme.example");
  editor = await mint("editor", "dispatcher@acme.example");
  // The app's key stays on a PKCS#11 token (SoftHSM2) where there is one: every app JWT is signed there.
  let appEnv: Record<string, string> = world.env;
  if (softHsmAvailable) {
    const hsm = softHsmToken(scratch.fresh());
    hsm.importKey(world.githubApp.privateKeyPem, "contribution-app");
    const { GITHUB_APP_PRIVATE_KEY: _inMemory, ...rest } = world.env;
    appEnv = { ...rest, ...hsm.appEnv("contribution-app"), SOFTHSM2_CONF: hsm.conf };
  } else {
    console.warn(`agent contribution e2e: the app key stays in memory: ${SKIPPED_WITHOUT_SOFTHSM}`);
  }
  server = await serveProcess("agent-contribution", { ...appEnv, ...storage, NODE_ENV: "test", LOG_LEVEL: "info" }, { port: Number(world.env.PORT) });
}, 120_000);

afterAll(async () => {
  await killKeyplaneProcesses();
  await server?.stop();
  await killServedProcesses();
  await world?.close();
  await database?.drop();
});

/** bin/keyplane.mjs agent …, as an operator runs it; stdout and stderr kept for the secret scan. */
function agentCommand(args: string[], name: string): KeyplaneProcess {
  return spawnKeyplane(
    ["agent", ...args],
    { HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "debug" },
    { log: { command: "contribution", name, streams: "both" } },
  );
}

async function enrollmentKey(): Promise<string> {
  const data = await gql(admin, `mutation { createEnrollmentKey(input: { description: "contribution e2e", expiresIn: 3600 }) { key } }`);
  registerSecret(data.createEnrollmentKey.key);
  return data.createEnrollmentKey.key as string;
}

/** A running `keyplane agent run`, enrolled and subscribed. */
async function runningAgent(): Promise<{ p: KeyplaneProcess; stateDir: string; agentId: string }> {
  const stateDir = scratch.fresh();
  const p = agentCommand(["run", "--server", server.url, "--key", await enrollmentKey(), "--state-dir", stateDir, ...FAST], "run");
  await waitFor("the agent's subscription", () => p.err().includes('"connected; subscribed to tasks"'), 30_000, p.err);
  const credential = readJson(path.join(stateDir, "credential.json"));
  registerSecret(credential.accessToken);
  registerSecret(credential.refreshToken);
  return { p, stateDir, agentId: credential.agentId as string };
}

async function stopped(p: KeyplaneProcess): Promise<number | null> {
  p.kill("SIGTERM");
  const { code } = await p.exited;
  return code;
}

async function dispatch(agentId: string, kind: string, payload: unknown): Promise<string> {
  const data = await gql(editor, `mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { id } }`, {
    input: { agentId, kind, payload, timeoutSeconds: 60 },
  });
  return data.dispatchTask.id as string;
}

async function finished(id: string, p: KeyplaneProcess): Promise<{ status: string; result: any; error: string | null }> {
  return waitFor(
    `task ${id} to finish`,
    async () => {
      const { task } = await gql(editor, `query ($id: ID!) { task(id: $id) { id status result error } }`, { id });
      return task && ["completed", "failed", "timed_out"].includes(task.status) && task;
    },
    45_000,
    p.err,
  );
}

/** An upstream organization's project, with the app installed there so that pull requests can be opened on it. */
function upstream(): string {
  const org = `upstream-${unique()}`;
  world.github.createRepository({ owner: org, name: "project", files: { "README.md": "# Project\n", "src/index.ts": "export {};\n" } });
  world.github.addInstallation({
    appId: world.githubApp.appId,
    account: { login: org, type: "Organization" },
    repositories: ["project"],
    permissions: { contents: "read", pull_requests: "write", metadata: "read" },
  });
  return `${org}/project`;
}

/** The person's browser: GitHub's consent page signed in as `login`, then Keyplane's callback (JSON). */
async function consent(authorizationUrl: string, login: string): Promise<{ status: number; body: any; visited: string[] }> {
  world.github.signInAs(login);
  const visited: string[] = [];
  let url = authorizationUrl;
  for (let hop = 0; hop < 5; hop++) {
    visited.push(url);
    const res = await fetch(url, { redirect: "manual" });
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      url = new URL(location, url).toString();
      continue;
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // a page
    }
    return { status: res.status, body, visited };
  }
  throw new Error(`the browser did not settle: ${visited.join(" -> ")}`);
}

const AUDIT = `query ($types: [String!], $after: String) {
  auditLog(first: 100, after: $after, filter: { types: $types }) { edges { node { type actor data metadata } } pageInfo { hasNextPage endCursor } }
}`;

/** The tenant's log, oldest first (of these types only, when given). */
async function log(types?: string[]): Promise<Array<{ type: string; actor: string; data: any; metadata: any }>> {
  const events = [];
  for (let after: string | null = null; ; ) {
    const { auditLog } = await gql(admin, AUDIT, { types: types ?? null, after });
    events.push(...auditLog.edges.map((e: any) => e.node));
    if (!auditLog.pageInfo.hasNextPage) return events;
    after = auditLog.pageInfo.endCursor;
  }
}

describe.skipIf(!softHsmAvailable)("the GitHub App's key on an HSM", () => {
  it("Keyplane checked the key on the token at start, and installing the app goes through JWTs signed there (the GitHub fake verifies them)", async () => {
    expect(server.output()).toMatch(/GitHub App default: pkcs11 token .* is ready/);
    const org = `hsm-${unique()}`;
    world.github.setNextInstall({ account: { login: org, type: "Organization" }, repositories: ["project"], permissions: { contents: "read" } });
    const installed = await browseInstall({ url: server.url }, "github", editor);
    expect(installed.status, JSON.stringify(installed.body)).toBe(200);
    expect(installed.body).toMatchObject({ outcome: "created", installation: { account: { login: org } } });
    expect(server.output()).not.toContain("BEGIN RSA PRIVATE KEY");
  });
});

describe("keyplane agent run: contributing to GitHub as the agent's own linked identity", () => {
  it("links with keyplane agent link-github, then a github-contribute task forks, commits each file to a branch of the fork and opens the pull request as the agent's account; every step is in the log, no GitHub token anywhere", async () => {
    const project = upstream();
    const login = `molty-${unique()}`;
    // The agent's own GitHub account, with the app installed on it (forks land there).
    world.github.addInstallation({
      appId: world.githubApp.appId,
      account: { login, type: "User" },
      repositories: [],
      repositorySelection: "all",
      permissions: { administration: "write", contents: "write", metadata: "read" },
    });
    const { p, stateDir, agentId } = await runningAgent();
    try {
      // The agent's human links its GitHub account while the agent runs (the command only reads its credential).
      const link = agentCommand(["link-github", "--state-dir", stateDir, "--poll-seconds", "0.2"], "link");
      const authorizationUrl = await waitFor(
        "the authorization URL",
        () => /^https?:\/\/\S+$/m.exec(link.out())?.[0],
        20_000,
        () => link.out() + link.err(),
      );
      expect(new URL(authorizationUrl).origin).toBe(world.github.url);
      // The instructions go to stderr, the URL to stdout: two pipes, read in no fixed order.
      const instructions = `Open this URL in a browser signed in to the GitHub account agent:${agentId} should act as`;
      await waitFor(
        "the instructions on stderr",
        () => link.err().includes(instructions),
        20_000,
        () => link.out() + link.err(),
      );
      const browser = await consent(authorizationUrl, login);
      expect(browser.status, JSON.stringify(browser.body)).toBe(200);
      expect(browser.body).toMatchObject({ outcome: "linked", identity: { login, subject: `agent:${agentId}` } });
      const linked = await link.done;
      expect(linked.code, linked.err).toBe(0);
      expect(linked.out).toBe(`${authorizationUrl}\nlinked as ${login} (app default)\n`);
      // The running agent heard it on its identityEvents subscription.
      await waitFor(
        "the agent to hear of the link",
        () => logLines(p.err()).some((l) => l.msg === "GitHub identity linked" && l.login === login),
        15_000,
        p.err,
      );

      const files = [
        { path: "README.md", content: "# Project\n\nNow with usage notes.\n" },
        { path: "docs/usage.md", content: "# Usage\n\nRun it.\n" },
      ];
      const id = await dispatch(agentId, "github-contribute", {
        repository: project,
        branch: "usage-notes",
        files,
        message: "Add usage notes",
        title: "Add usage notes",
        body: "Opened by a Keyplane agent.",
      });
      const task = await finished(id, p);
      expect(task, task.error ?? "").toMatchObject({ status: "completed" });
      const fork = `${login}/project`;
      expect(task.result).toEqual({
        fork,
        branch: "usage-notes",
        commits: [expect.stringMatching(/^[0-9a-f]{40}$/), expect.stringMatching(/^[0-9a-f]{40}$/)],
        pullRequest: { number: 1, url: expect.stringContaining(`/${project}/pull/1`) },
        actedAs: login,
      });

      // GitHub's side: the fork, the branch and the pull request are the agent's account's.
      const forked = world.github.repository(fork)!;
      expect(forked).toMatchObject({ fork: true, parent: project, createdBy: login });
      const branch = forked.branches["usage-notes"]!;
      expect(branch).toMatchObject({ sha: task.result.commits[1], author: login, message: "Add usage notes" });
      expect(branch.files).toMatchObject({ "README.md": files[0]!.content, "docs/usage.md": files[1]!.content, "src/index.ts": "export {};\n" });
      const pulls = world.github.repository(project)!.pulls;
      expect(pulls).toHaveLength(1);
      expect(pulls[0]).toMatchObject({
        number: 1,
        user: login,
        title: "Add usage notes",
        headRepo: fork,
        headRef: "usage-notes",
        baseRef: "main",
        state: "open",
      });

      // Keyplane's log: each GitHub step and each task step, by the agent.
      const subject = `agent:${agentId}`;
      const github = await log(["github.forked", "github.committed", "github.pull_request_opened"]);
      expect(github.map((e) => e.type)).toEqual(["github.forked", "github.committed", "github.committed", "github.pull_request_opened"]);
      for (const event of github) {
        expect(event.actor).toBe(subject);
        expect(event.data).toMatchObject({ via: "identity", actedAs: login });
      }
      expect(github.map((e) => e.data.commitSha).filter(Boolean)).toEqual(task.result.commits);
      expect(github[3]!.data).toMatchObject({ repository: project, number: 1, head: `${login}:usage-notes` });
      const steps = (await log(["task.dispatched", "task.claimed", "task.progressed", "task.completed"])).filter((e) => e.data.taskId === id);
      // Progress is best effort (not awaited): fork, each commit and the pull request each said one.
      const types = steps.map((e) => e.type);
      expect(types.slice(0, 2)).toEqual(["task.dispatched", "task.claimed"]);
      expect(types.at(-1)).toBe("task.completed");
      expect(types.slice(2, -1).every((t) => t === "task.progressed")).toBe(true);
      expect(steps.filter((e) => e.type === "task.progressed").map((e) => e.data.progress.step)).toEqual(["forking", "committing", "committing", "opening"]);
      expect(steps[0]!.actor).toBe("dispatcher@acme.example");
      for (const step of steps.slice(1)) expect(step.actor).toBe(subject);
      const identity = await log(["identity.link_requested", "identity.linked"]);
      expect(identity.map((e) => [e.type, e.actor])).toEqual([
        ["identity.link_requested", subject],
        ["identity.linked", subject],
      ]);

      // No GitHub token in the log, nor in what the agent and the link command wrote.
      expect(JSON.stringify(await log())).not.toMatch(GITHUB_TOKEN);
      expect(await stopped(p)).toBe(0);
      expect(p.out()).toBe("");
      for (const text of [p.err(), linked.out, linked.err]) expect(text).not.toMatch(GITHUB_TOKEN);
      expect(logLines(p.err()).filter((l) => l.level === "error")).toEqual([]);
    } finally {
      p.kill("SIGKILL");
    }
  });

  it("an agent with no linked identity: its github-fork task fails with Keyplane's FORBIDDEN, and nothing is made on GitHub", async () => {
    const project = upstream();
    const { p, agentId } = await runningAgent();
    try {
      const task = await finished(await dispatch(agentId, "github-fork", { repository: project }), p);
      expect(task.status).toBe("failed");
      expect(task.error).toMatch(/^github-fork: githubFork refused: .*no linked GitHub identity.* \(FORBIDDEN\)$/);
      expect(world.github.repository(project)!.forks).toEqual([]);
      const forks = (await log(["github.forked"])).filter((e) => e.actor === `agent:${agentId}`);
      expect(forks).toEqual([]);
      const denied = (await log(["access.denied"])).filter((e) => e.actor === `agent:${agentId}`);
      expect(denied.length).toBeGreaterThanOrEqual(1);
      expect(await stopped(p)).toBe(0);
      expect(p.err()).not.toMatch(GITHUB_TOKEN);
    } finally {
      p.kill("SIGKILL");
    }
  });
});
