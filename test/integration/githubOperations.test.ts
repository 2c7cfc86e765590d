import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enroll } from "../testkit/fixtures.ts";
import { browseInstall, browseLink, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Fork, commit and pull request on GitHub through Keyplane, against the GitHub fake, which judges each
// token as GitHub does: as the agent's linked identity (what it makes is that account's), or with an
// installation token a token policy allows; refused without either, and every success one event.

let world: ProviderWorld;
let app: TestApp;

beforeAll(async () => {
  world = await startProviderWorld();
  app = await createTestApp({ env: world.env, name: "github-operations" });
});
afterAll(async () => {
  await app?.close();
  await world?.close();
});

const FORK = "mutation ($input: GitHubForkInput!) { githubFork(input: $input) { repository fork url owner defaultBranch via actedAs } }";
const COMMIT = "mutation ($input: GitHubCommitFileInput!) { githubCommitFile(input: $input) { repository branch createdFrom path commitSha via actedAs } }";
const PULL = "mutation ($input: GitHubPullRequestInput!) { githubCreatePullRequest(input: $input) { repository number url head base via actedAs } }";
const AUDIT = `query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { edges { node { type data metadata } } } }`;

const unique = () => randomBytes(4).toString("hex");

/** An upstream organization's public project, with the app installed on it so that pull requests can be opened there. */
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

/** An agent's own GitHub account with the app installed on it (forks land there), linked to the agent. */
async function agentWithIdentity(tenant: SeededTenant) {
  const agent = await enroll(app, tenant);
  const login = `molty-${unique()}`;
  world.github.addInstallation({
    appId: world.githubApp.appId,
    account: { login, type: "User" },
    repositories: [],
    repositorySelection: "all",
    permissions: { administration: "write", contents: "write", metadata: "read" },
  });
  const linked = await browseLink(app, world.github, agent.accessToken, login);
  expect(linked.status, JSON.stringify(linked.body)).toBe(200);
  return { agent, login };
}

async function audit(tenant: SeededTenant, types: string[]) {
  const res = await app.gql(AUDIT, { types }, { token: tenant.tokens.admin });
  expect(res.errors).toBeUndefined();
  return res.data.auditLog.edges.map((e: any) => e.node);
}

describe("an agent contributes as its linked GitHub identity", () => {
  it("forks into its own account, commits a file to a new branch of the fork, opens a pull request upstream: each GitHub's record shows the agent's account, each a github.* event", async () => {
    const tenant = await app.seedTenant();
    const project = upstream();
    const { agent, login } = await agentWithIdentity(tenant);

    const fork = await app.gql(FORK, { input: { repository: project } }, { token: agent.accessToken });
    expect(fork.errors).toBeUndefined();
    expect(fork.data.githubFork).toMatchObject({
      repository: project,
      fork: `${login}/project`,
      owner: login,
      defaultBranch: "main",
      via: "identity",
      actedAs: login,
    });
    expect(world.github.repository(`${login}/project`)).toMatchObject({ fork: true, parent: project, createdBy: login });

    const commit = await app.gql(
      COMMIT,
      { input: { repository: `${login}/project`, branch: "fix-readme", path: "README.md", content: "# Project\n\nFixed.\n", message: "Fix the README" } },
      { token: agent.accessToken },
    );
    expect(commit.errors).toBeUndefined();
    expect(commit.data.githubCommitFile).toMatchObject({ branch: "fix-readme", createdFrom: "main", via: "identity", actedAs: login });
    const branch = world.github.repository(`${login}/project`)!.branches["fix-readme"]!;
    expect(branch).toMatchObject({ sha: commit.data.githubCommitFile.commitSha, message: "Fix the README", author: login });
    expect(branch.files["README.md"]).toBe("# Project\n\nFixed.\n");
    expect(branch.files["src/index.ts"]).toBe("export {};\n");

    const pull = await app.gql(
      PULL,
      { input: { repository: project, head: `${login}:fix-readme`, base: "main", title: "Fix the README", body: "By an agent." } },
      { token: agent.accessToken },
    );
    expect(pull.errors).toBeUndefined();
    expect(pull.data.githubCreatePullRequest).toMatchObject({ repository: project, number: 1, via: "identity", actedAs: login });
    expect(world.github.repository(project)!.pulls).toEqual([
      expect.objectContaining({ number: 1, title: "Fix the README", user: login, headRef: "fix-readme", baseRef: "main", state: "open" }),
    ]);

    // A second pull request from the same branch is GitHub's 422, said in words.
    const again = await app.gql(
      PULL,
      { input: { repository: project, head: `${login}:fix-readme`, base: "main", title: "Again" } },
      { token: agent.accessToken },
    );
    expect(again.errors?.[0]?.extensions).toMatchObject({ code: "PROVIDER_ERROR", providerCode: expect.stringContaining("a_pull_request_already_exists") });

    const events = await audit(tenant, ["github.forked", "github.committed", "github.pull_request_opened"]);
    expect(events.map((e: any) => e.type)).toEqual(["github.forked", "github.committed", "github.pull_request_opened"]);
    for (const event of events) {
      expect(event.data).toMatchObject({ app: "default", via: "identity", actedAs: login, identityId: expect.any(String), fingerprint: expect.any(String) });
      expect(event.metadata.actor.subject).toBe(`agent:${agent.agentId}`);
    }
    expect(events[2].data).toMatchObject({ repository: project, number: 1, url: pull.data.githubCreatePullRequest.url, head: `${login}:fix-readme` });
    expect(JSON.stringify(events)).not.toMatch(/ghu_|ghr_|ghs_/);
  });

  it("is refused in words where the identity cannot act: a private repository it cannot see, or no installation on its account to fork into", async () => {
    const tenant = await app.seedTenant();
    const hidden = `hidden-${unique()}`;
    world.github.createRepository({ owner: hidden, name: "secret", private: true });
    const { agent } = await agentWithIdentity(tenant);
    const notFound = await app.gql(FORK, { input: { repository: `${hidden}/secret` } }, { token: agent.accessToken });
    expect(notFound.errors?.[0]?.extensions).toMatchObject({ code: "PROVIDER_ERROR", providerCode: "not_found" });
    // An account the app is not installed on: GitHub will not make the fork there.
    const bare = await enroll(app, tenant);
    const linked = await browseLink(app, world.github, bare.accessToken, `bare-${unique()}`);
    expect(linked.status).toBe(200);
    const refused = await app.gql(FORK, { input: { repository: upstream() } }, { token: bare.accessToken });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: "PROVIDER_ERROR", providerCode: "resource_not_accessible_by_integration" });
    expect(await audit(tenant, ["github.forked"])).toEqual([]);
  });
});

describe("without an identity", () => {
  it("nothing is done and the refusal says why: no linked identity and no token policy; `as: identity` asks only for the identity", async () => {
    const tenant = await app.seedTenant();
    const project = upstream();
    const agent = await enroll(app, tenant);
    const before = world.github.repository(project)!.forks.length;
    const fork = await app.gql(FORK, { input: { repository: project } }, { token: agent.accessToken });
    expect(fork.errors?.[0]).toMatchObject({ extensions: { code: "FORBIDDEN" }, message: expect.stringContaining("no linked GitHub identity") });
    const pull = await app.gql(PULL, { input: { repository: project, head: "main", base: "main", title: "x" } }, { token: agent.accessToken });
    expect(pull.errors?.[0]).toMatchObject({ extensions: { code: "FORBIDDEN" }, message: expect.stringContaining("and no installation token") });
    const asIdentity = await app.gql(
      PULL,
      { input: { repository: project, head: "main", base: "main", title: "x", as: "identity" } },
      { token: agent.accessToken },
    );
    expect(asIdentity.errors?.[0]?.message).toContain("link one");
    expect(world.github.repository(project)!.forks).toHaveLength(before);
    expect(world.github.repository(project)!.pulls).toEqual([]);
    expect(await audit(tenant, ["github.forked", "github.pull_request_opened"])).toEqual([]);
  });

  it("a service commits and opens a pull request with an installation token its policy allows, narrowed to the repository; the app's bot acts", async () => {
    const tenant = await app.seedTenant();
    const org = `tenant-org-${unique()}`;
    world.github.createRepository({ owner: org, name: "infra", private: true });
    world.github.setNextInstall({
      account: { login: org, type: "Organization" },
      repositories: ["infra", "other"],
      permissions: { contents: "write", pull_requests: "write" },
    });
    const installed = await browseInstall(app, "github", tenant.tokens.editor);
    expect(installed.status, JSON.stringify(installed.body)).toBe(200);
    const policy = await app.gql(
      "mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name } }",
      {
        input: { name: "bots", app: "default", roles: ["service"], repositories: [`${org}/infra`], permissions: { contents: "write", pull_requests: "write" } },
      },
      { token: tenant.tokens.admin },
    );
    expect(policy.errors).toBeUndefined();

    const commit = await app.gql(
      COMMIT,
      { input: { repository: `${org}/infra`, branch: "bump", path: "VERSION", content: "2\n", message: "Bump" } },
      { token: tenant.tokens.service },
    );
    expect(commit.errors).toBeUndefined();
    expect(commit.data.githubCommitFile).toMatchObject({ via: "installation", actedAs: `${world.githubApp.slug}[bot]`, createdFrom: "main" });
    const pull = await app.gql(PULL, { input: { repository: `${org}/infra`, head: "bump", base: "main", title: "Bump" } }, { token: tenant.tokens.service });
    expect(pull.errors).toBeUndefined();
    expect(world.github.repository(`${org}/infra`)!.pulls[0]).toMatchObject({ user: `${world.githubApp.slug}[bot]`, headRef: "bump" });

    // The tokens used were narrowed to the repository, and each hand-out is on record.
    const issued = world.github.installationTokens.slice(-2);
    for (const token of issued) expect(token.repositories).toEqual(["infra"]);
    const handed = await audit(tenant, ["token.issued"]);
    expect(handed.length).toBeGreaterThanOrEqual(1);
    const [committed, opened] = await audit(tenant, ["github.committed", "github.pull_request_opened"]);
    expect(committed.data).toMatchObject({ via: "installation", githubTokenId: expect.any(String) });
    expect(opened.data).toMatchObject({ via: "installation", number: 1 });

    // Outside the policy (another repository of the installation): refused, nothing made.
    const outside = await app.gql(PULL, { input: { repository: `${org}/other`, head: "x", base: "main", title: "x" } }, { token: tenant.tokens.service });
    expect(outside.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});

describe("bad input and tenant isolation", () => {
  it("refuses malformed repositories, branches and paths with BAD_USER_INPUT before anything reaches GitHub", async () => {
    const tenant = await app.seedTenant();
    const requestsBefore = world.github.requests.length;
    const cases: Array<[string, Record<string, unknown>, string]> = [
      [FORK, { repository: "no-slash" }, "repository"],
      [FORK, { repository: "a/b/c" }, "repository"],
      [COMMIT, { repository: "o/r", branch: "bad..branch", path: "x", content: "", message: "m" }, "branch"],
      [COMMIT, { repository: "o/r", branch: "ok", path: "../etc/passwd", content: "", message: "m" }, "path"],
      [COMMIT, { repository: "o/r", branch: "ok", path: "/abs", content: "", message: "m" }, "path"],
      [PULL, { repository: "o/r", head: "a b", base: "main", title: "t" }, "head"],
      [PULL, { repository: "o/r", head: "h", base: "main", title: "" }, "title"],
    ];
    for (const [query, input, field] of cases) {
      const res = await app.gql(query, { input }, { token: tenant.tokens.service });
      expect(res.errors?.[0]?.extensions, JSON.stringify(input)).toMatchObject({ code: "BAD_USER_INPUT", field });
    }
    expect(world.github.requests.length).toBe(requestsBefore);
  });

  it("another tenant's agent cannot act as this tenant's identities, and people cannot operate at all", async () => {
    const tenant = await app.seedTenant();
    const project = upstream();
    await agentWithIdentity(tenant);
    const other = await app.seedTenant();
    const stranger = await enroll(app, other);
    const refused = await app.gql(FORK, { input: { repository: project } }, { token: stranger.accessToken });
    expect(refused.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    for (const token of [tenant.tokens.admin, tenant.tokens.editor, tenant.tokens.viewer]) {
      expect((await app.gql(FORK, { input: { repository: project } }, { token })).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    }
    expect(await audit(other, ["github.forked"])).toEqual([]);
    registerSecret(stranger.accessToken);
  });
});
