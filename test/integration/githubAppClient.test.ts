import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../../src/errors.ts";
import { createGitHubAppClient, type GitHubAppClientOptions } from "../../src/github/appClient.ts";
import type { GitHubApp, GitHubAppClient } from "../../src/github/types.ts";
import { createMetrics, type Metrics } from "../../src/metrics.ts";
import { ProviderError } from "../../src/providers/provider.ts";
import { startFakeGitHub, type FakeGitHub, type FakeGitHubApp } from "../fakes/github.ts";
import { registerSecret, testLogger } from "../testkit/secrets.ts";
import { testClock } from "../testkit/testClock.ts";

// One named app's client against the local GitHub fake: installation discovery and its cache, token
// narrowing, every failure class (retries with backoff, rate-limit waits within the deadline, refusals
// that fail at once), clock skew, revocation, and the metrics each call feeds.

const MINT_PATH = (id: number) => `/app/installations/${id}/access_tokens`;
const MINT_ROUTE = "POST /app/installations/{installation_id}/access_tokens";

let fake: FakeGitHub;
let fakeApp: FakeGitHubApp;
let app: GitHubApp;
let metrics: Metrics;
/** Every wait the client asked for (backoff, Retry-After), in ms; the waits themselves are skipped. */
let sleeps: number[];
const logger = testLogger("githubAppClient");

function client(overrides: Partial<GitHubAppClientOptions> & { app?: GitHubApp } = {}): GitHubAppClient {
  const { app: which, ...options } = overrides;
  return createGitHubAppClient(which ?? app, {
    apiUrl: fake.url,
    timeoutMs: 5_000,
    metrics,
    logger,
    sleep: async (ms) => void sleeps.push(ms),
    ...options,
  });
}

/** The requests the fake saw since `from` whose path starts with `prefix`, as "METHOD path status". */
const seen = (from: number, prefix = "/") =>
  fake.requests
    .slice(from)
    .filter((r) => r.path.startsWith(prefix))
    .map((r) => `${r.method} ${r.path} ${r.status}`);

async function failure(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error("expected a DomainError, the call succeeded");
}

/** Nothing an error shows may be a token or a JWT. */
function expectClean(error: Error, ...secrets: string[]) {
  const all = `${error.message}\n${error.stack ?? ""}\n${JSON.stringify({ ...error })}`;
  expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10}/);
  expect(all).not.toMatch(/ghs_[A-Za-z0-9]{10}/);
  for (const s of secrets) expect(all).not.toContain(s);
}

let org = 0;
function install(
  options: {
    type?: "Organization" | "User";
    repositories?: string[];
    permissions?: Record<string, "read" | "write" | "admin">;
    selection?: "all" | "selected";
    appId?: number;
  } = {},
) {
  const login = `org-${++org}-${Math.random().toString(36).slice(2, 6)}`;
  return fake.addInstallation({
    appId: options.appId ?? fakeApp.appId,
    account: { login, type: options.type ?? "Organization" },
    repositories: options.repositories ?? ["api", "web"],
    permissions: options.permissions ?? { contents: "write", metadata: "read", pull_requests: "write" },
    repositorySelection: options.selection,
  });
}

beforeAll(async () => {
  fake = await startFakeGitHub();
  fakeApp = await fake.createApp({ slug: "rex-client-test" });
  app = { name: "rex", appId: String(fakeApp.appId), slug: fakeApp.slug, privateKey: createPrivateKey(fakeApp.privateKeyPem) };
});
afterAll(() => fake.close());
beforeAll(() => {
  metrics = createMetrics();
  sleeps = [];
});
afterEach(() => {
  sleeps = [];
  fake.setClockOffset(0);
});

describe("installation discovery", () => {
  it("finds the installation by repository and caches it (case-insensitively)", async () => {
    const installation = install();
    const rex = client();
    const from = fake.requests.length;
    expect(await rex.resolveInstallation({ repository: `${installation.account.login}/api` })).toBe(installation.id);
    expect(seen(from)).toEqual([`GET /repos/${installation.account.login}/api/installation 200`]);
    expect(await rex.resolveInstallation({ repository: `${installation.account.login.toUpperCase()}/API` })).toBe(installation.id);
    expect(fake.requests.length).toBe(from + 1);
  });

  it("finds it by owner: an organization directly, a user after the organization route says 404", async () => {
    const orgInstallation = install();
    const userInstallation = install({ type: "User" });
    const rex = client();
    let from = fake.requests.length;
    expect(await rex.resolveInstallation({ owner: orgInstallation.account.login })).toBe(orgInstallation.id);
    expect(seen(from)).toEqual([`GET /orgs/${orgInstallation.account.login}/installation 200`]);
    from = fake.requests.length;
    expect(await rex.resolveInstallation({ owner: userInstallation.account.login })).toBe(userInstallation.id);
    expect(seen(from)).toEqual([
      `GET /orgs/${userInstallation.account.login}/installation 404`,
      `GET /users/${userInstallation.account.login}/installation 200`,
    ]);
    from = fake.requests.length;
    await Promise.all([rex.resolveInstallation({ owner: userInstallation.account.login }), rex.resolveInstallation({ owner: orgInstallation.account.login })]);
    expect(fake.requests.length).toBe(from);
  });

  it("takes the app's only installation, shares one lookup between concurrent callers, and refuses to guess among several", async () => {
    const solo = await fake.createApp({ slug: "solo-app" });
    const soloApp: GitHubApp = { name: "solo", appId: String(solo.appId), privateKey: createPrivateKey(solo.privateKeyPem) };
    const soloClient = client({ app: soloApp });
    const none = await failure(soloClient.resolveInstallation({}));
    expect(none).toMatchObject({ code: "NOT_FOUND", extensions: { platform: "github", app: "solo" } });
    expect(none.message).toMatch(/GitHub App solo/);

    const only = install({ appId: solo.appId });
    const from = fake.requests.length;
    const [a, b] = await Promise.all([soloClient.resolveInstallation({}), soloClient.resolveInstallation({})]);
    expect([a, b]).toEqual([only.id, only.id]);
    expect(seen(from)).toEqual(["GET /app/installations 200"]);

    install({ appId: solo.appId });
    const several = await failure(client({ app: soloApp }).resolveInstallation({}));
    expect(several).toMatchObject({ code: "BAD_USER_INPUT", extensions: { field: "owner" } });
    expect(several.message).toMatch(/several installations/);
  });

  it("answers NOT_FOUND naming the repository or owner, and does not cache the miss", async () => {
    const rex = client();
    const from = fake.requests.length;
    const repo = await failure(rex.resolveInstallation({ repository: "nobody-here/nothing" }));
    expect(repo).toMatchObject({ code: "NOT_FOUND", extensions: { platform: "github", app: "rex" } });
    expect(repo.message).toContain("repository nobody-here/nothing");
    const owner = await failure(rex.resolveInstallation({ owner: "ghost-account" }));
    expect(owner.code).toBe("NOT_FOUND");
    expect(owner.message).toContain("account ghost-account");
    await failure(rex.resolveInstallation({ repository: "nobody-here/nothing" }));
    expect(seen(from).filter((r) => r.includes("nobody-here"))).toHaveLength(2);
    expect((await failure(rex.resolveInstallation({ repository: "not a repo" }))).code).toBe("BAD_USER_INPUT");
  });

  it("retries a 5xx, does not cache a failure, and forgets cached ids after the TTL", async () => {
    const installation = install();
    const clock = testClock();
    const rex = client({ discovery: { ttlMs: 60_000 }, now: clock.now });
    const repository = `${installation.account.login}/web`;
    for (let i = 0; i < 5; i++) fake.failNext(`/repos/${installation.account.login}/`, { status: 503 });
    const from = fake.requests.length;
    const error = await failure(rex.resolveInstallation({ repository }));
    expect(error).toMatchObject({ code: "PROVIDER_ERROR", extensions: { platform: "github", app: "rex", providerCode: "server_error" } });
    expect(seen(from)).toHaveLength(5);
    expect(await rex.resolveInstallation({ repository })).toBe(installation.id);
    expect(await rex.resolveInstallation({ repository })).toBe(installation.id);
    expect(seen(from)).toHaveLength(6);
    clock.advance(60_000);
    expect(await rex.resolveInstallation({ repository })).toBe(installation.id);
    expect(seen(from)).toHaveLength(7);
    // A given id needs no lookup at all.
    expect(await rex.resolveInstallation({ installationId: 12345 })).toBe(12345);
    expect(seen(from)).toHaveLength(7);
  });
});

describe("minting installation tokens", () => {
  it("mints a token for every repository the installation covers; tokens are opaque strings of any length", async () => {
    const installation = install({ selection: "all" });
    const minted = await client().mint({ installationId: installation.id });
    registerSecret(minted.token);
    const issued = fake.installationTokens.at(-1)!;
    expect(minted.token).toBe(issued.token);
    expect(minted.token.length).not.toBe(40);
    expect(minted).toMatchObject({
      installationId: installation.id,
      repositorySelection: "all",
      repositories: null,
      permissions: { contents: "write", metadata: "read", pull_requests: "write" },
    });
    expect(minted.expiresAt.toISOString().replace(".000", "")).toBe(issued.expiresAt);
    expect(fake.isInstallationTokenValid(minted.token)).toBe(true);
  });

  it("narrows to repositories by name or id and to a subset of permissions", async () => {
    const installation = install({ repositories: ["api", "web", "docs"] });
    const owner = installation.account.login;
    const rex = client();
    const byName = await rex.mint({ installationId: installation.id, repositories: ["api"], permissions: { contents: "read" } });
    expect(byName).toMatchObject({ repositorySelection: "selected", repositories: [`${owner}/api`], permissions: { contents: "read" } });
    expect(fake.installationTokens.at(-1)).toMatchObject({ repositories: ["api"], permissions: { contents: "read" } });

    // Repository ids, as GitHub lists them to a token of the installation.
    const listing = await fetch(`${fake.url}/installation/repositories`, { headers: { authorization: `token ${byName.token}` } });
    const apiId = ((await listing.json()) as { repositories: Array<{ id: number }> }).repositories[0]!.id;
    const all = await rex.mint({ installationId: installation.id });
    const everything = await fetch(`${fake.url}/installation/repositories`, { headers: { authorization: `token ${all.token}` } });
    const docs = ((await everything.json()) as { repositories: Array<{ id: number; name: string }> }).repositories.find((r) => r.name === "docs")!;
    const byId = await rex.mint({ installationId: installation.id, repositoryIds: [apiId, docs.id] });
    expect(byId.repositories).toEqual([`${owner}/api`, `${owner}/docs`]);
    expect(all.repositories).toEqual([`${owner}/api`, `${owner}/web`, `${owner}/docs`]);
    for (const t of [byName, all, byId]) registerSecret(t.token);
  });

  it("answers BAD_USER_INPUT naming the repository or permission the installation lacks (422)", async () => {
    const installation = install({ permissions: { contents: "read", metadata: "read" } });
    const rex = client();
    const from = fake.requests.length;
    const repo = await failure(rex.mint({ installationId: installation.id, repositories: ["api", "secret-plans"] }));
    expect(repo).toMatchObject({ code: "BAD_USER_INPUT", extensions: { field: "repositories", platform: "github", app: "rex" } });
    expect(repo.message).toContain("secret-plans");
    expect(repo.message).toContain(`installation ${installation.id}`);
    const permission = await failure(rex.mint({ installationId: installation.id, permissions: { contents: "write" } }));
    expect(permission).toMatchObject({ code: "BAD_USER_INPUT", extensions: { field: "permissions" } });
    expect(permission.message).toContain("contents:write");
    const id = await failure(rex.mint({ installationId: installation.id, repositoryIds: [1] }));
    expect(id.message).toContain("repository id 1");
    expect(seen(from)).toHaveLength(3); // refused at once, no retry
    // Requests that cannot be right are refused before GitHub sees them; an empty list never means "all".
    for (const bad of [{ repositories: [] }, { repositories: ["owner/api"] }, { repositoryIds: [0] }, { permissions: { contents: "own" } }]) {
      expect((await failure(rex.mint({ installationId: installation.id, ...bad } as never))).code).toBe("BAD_USER_INPUT");
    }
    expect((await failure(rex.mint({ installationId: -1 }))).code).toBe("BAD_USER_INPUT");
    expect(seen(from)).toHaveLength(3);
  });

  it("answers NOT_FOUND naming the installation (404), and forgets a discovered id that is gone", async () => {
    const rex = client();
    const missing = await failure(rex.mint({ installationId: 999_999_999 }));
    expect(missing).toMatchObject({ code: "NOT_FOUND", extensions: { platform: "github", app: "rex", providerCode: "not_found" } });
    expect(missing.message).toBe("installation 999999999 of GitHub App rex not found");

    const installation = install();
    const repository = `${installation.account.login}/api`;
    expect(await rex.resolveInstallation({ repository })).toBe(installation.id);
    fake.installationEvent(installation.id, "deleted");
    expect((await failure(rex.mint({ installationId: installation.id }))).code).toBe("NOT_FOUND");
    expect((await failure(rex.resolveInstallation({ repository }))).code).toBe("NOT_FOUND");
  });

  it("retries 5xx and network errors with exponential backoff and jitter, then succeeds", async () => {
    const installation = install();
    fake.failNext(MINT_PATH(installation.id), { status: 502 });
    fake.failNext(MINT_PATH(installation.id), { status: 500 });
    fake.failNext(MINT_PATH(installation.id), { status: 503 });
    const from = fake.requests.length;
    const minted = await client().mint({ installationId: installation.id });
    registerSecret(minted.token);
    expect(seen(from)).toEqual([502, 500, 503, 201].map((s) => `POST ${MINT_PATH(installation.id)} ${s}`));
    expect(sleeps).toHaveLength(3);
    sleeps.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(0.5 * 500 * 2 ** i);
      expect(ms).toBeLessThanOrEqual(500 * 2 ** i);
    });
  });

  it("gives up after five attempts with PROVIDER_ERROR, the backoff capped at 5 s", async () => {
    const installation = install();
    for (let i = 0; i < 5; i++) fake.failNext(MINT_PATH(installation.id), { status: 500 });
    const from = fake.requests.length;
    const error = await failure(client({ timeoutMs: 60_000 }).mint({ installationId: installation.id }));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({
      code: "PROVIDER_ERROR",
      kind: "transient",
      httpStatus: 500,
      extensions: { platform: "github", app: "rex", providerCode: "server_error" },
    });
    expect(error.message).toMatch(/GitHub App rex: GitHub failed \(HTTP 500\) on POST \/app\/installations\/\{installation_id\}\/access_tokens, 5 attempts/);
    expect(seen(from)).toHaveLength(5);
    expect(sleeps).toHaveLength(4);

    // With a larger base the waits reach the cap and stay there.
    sleeps = [];
    for (let i = 0; i < 6; i++) fake.failNext(MINT_PATH(installation.id), { status: 500 });
    await failure(client({ timeoutMs: 60_000, retry: { attempts: 6, baseMs: 2_000 } }).mint({ installationId: installation.id }));
    expect(sleeps).toHaveLength(5);
    expect(Math.max(...sleeps)).toBeLessThanOrEqual(5_000);
    expect(sleeps.slice(2).every((ms) => ms >= 2_500)).toBe(true);
  });

  it("reports an unreachable GitHub as PROVIDER_ERROR network_error after retrying", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", () => resolve()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await failure(client({ apiUrl: `http://127.0.0.1:${port}` }).mint({ installationId: 1 }));
    expect(error).toMatchObject({ code: "PROVIDER_ERROR", kind: "transient", extensions: { providerCode: "network_error", app: "rex" } });
    expect(sleeps).toHaveLength(4);
  });

  it("stops retrying when the next backoff would pass the request's deadline", async () => {
    const installation = install();
    fake.failNext(MINT_PATH(installation.id), { status: 502 });
    const from = fake.requests.length;
    const error = await failure(client().mint({ installationId: installation.id, deadline: Date.now() + 100 }));
    expect(error).toMatchObject({ code: "PROVIDER_ERROR", httpStatus: 502 });
    expect(seen(from)).toHaveLength(1);
  });

  it("waits out a 429's Retry-After that fits in the deadline, and answers RATE_LIMITED with retryAfter when it does not", async () => {
    const installation = install();
    const rex = client();
    fake.failNext(MINT_PATH(installation.id), { status: 429, body: { message: "API rate limit exceeded" }, headers: { "retry-after": "2" } });
    let from = fake.requests.length;
    registerSecret((await rex.mint({ installationId: installation.id, deadline: Date.now() + 10_000 })).token);
    expect(sleeps).toEqual([2_000]);
    expect(seen(from)).toEqual([429, 201].map((s) => `POST ${MINT_PATH(installation.id)} ${s}`));

    fake.failNext(MINT_PATH(installation.id), { status: 429, body: { message: "API rate limit exceeded" }, headers: { "retry-after": "120" } });
    from = fake.requests.length;
    const error = await failure(rex.mint({ installationId: installation.id, deadline: Date.now() + 10_000 }));
    expect(error).toMatchObject({ code: "RATE_LIMITED", extensions: { retryAfter: 120, platform: "github", app: "rex" } });
    expect(seen(from)).toHaveLength(1);
    expect(sleeps).toEqual([2_000]);
  });

  it("treats a secondary-rate-limit 403 and an exhausted primary limit alike (Retry-After, X-RateLimit-Reset)", async () => {
    const installation = install();
    const rex = client();
    const secondary = { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." };
    fake.failNext(MINT_PATH(installation.id), { status: 403, body: secondary, headers: { "retry-after": "3" } });
    registerSecret((await rex.mint({ installationId: installation.id, deadline: Date.now() + 10_000 })).token);
    expect(sleeps).toEqual([3_000]);

    fake.failNext(MINT_PATH(installation.id), { status: 403, body: secondary });
    const beyond = await failure(rex.mint({ installationId: installation.id, deadline: Date.now() + 10_000 }));
    expect(beyond).toMatchObject({ code: "RATE_LIMITED", extensions: { retryAfter: 60 } }); // no header: GitHub says wait a minute

    const reset = Math.floor(fake.now() / 1000) + 30;
    fake.failNext(MINT_PATH(installation.id), {
      status: 403,
      body: { message: "API rate limit exceeded for installation" },
      headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(reset) },
    });
    sleeps = [];
    registerSecret((await rex.mint({ installationId: installation.id, deadline: Date.now() + 60_000 })).token);
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThan(28_000);
    expect(sleeps[0]).toBeLessThanOrEqual(32_000);

    fake.failNext(MINT_PATH(installation.id), {
      status: 403,
      body: { message: "API rate limit exceeded for installation" },
      headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(reset + 600) },
    });
    const primary = await failure(rex.mint({ installationId: installation.id, deadline: Date.now() + 60_000 }));
    expect(primary.code).toBe("RATE_LIMITED");
    expect(primary.extensions.retryAfter).toBeGreaterThan(600);
  });

  it("fails at once with PROVIDER_ERROR when GitHub refuses the app's key (401), without the JWT", async () => {
    const installation = install();
    const wrongKey: GitHubApp = { ...app, name: "rex-wrong-key", privateKey: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey };
    const from = fake.requests.length;
    const error = await failure(client({ app: wrongKey }).mint({ installationId: installation.id }));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({
      code: "PROVIDER_ERROR",
      kind: "rejected",
      httpStatus: 401,
      extensions: { platform: "github", app: "rex-wrong-key", providerCode: "a_json_web_token_could_not_be_decoded" },
    });
    expect(error.message).toMatch(/wrong private key or app id/);
    expect(seen(from)).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expectClean(error);

    const wrongId = await failure(client({ app: { ...app, name: "rex-wrong-id", appId: "1" } }).mint({ installationId: installation.id }));
    expect(wrongId).toMatchObject({ code: "PROVIDER_ERROR", httpStatus: 401 });
    expect(wrongId.message).toContain("(1)");
  });

  it("fails at once with a clear PROVIDER_ERROR for a suspended installation", async () => {
    const installation = install();
    fake.suspend(installation.id);
    const from = fake.requests.length;
    const error = await failure(client().mint({ installationId: installation.id }));
    expect(error).toMatchObject({
      code: "PROVIDER_ERROR",
      kind: "rejected",
      httpStatus: 403,
      extensions: { providerCode: "this_installation_has_been_suspended", app: "rex" },
    });
    expect(error.message).toBe(`GitHub App rex: installation ${installation.id} is suspended (HTTP 403)`);
    expect(seen(from)).toHaveLength(1);
  });

  it("corrects clock skew from GitHub's Date header with one retry, and the next call needs none", async () => {
    for (const offset of [-120_000, 600_000]) {
      const installation = install();
      const rex = client(); // a fresh client has measured no difference yet
      fake.setClockOffset(offset);
      let from = fake.requests.length;
      registerSecret((await rex.mint({ installationId: installation.id })).token);
      expect(seen(from), `offset ${offset}`).toEqual([401, 201].map((s) => `POST ${MINT_PATH(installation.id)} ${s}`));
      from = fake.requests.length;
      registerSecret((await rex.mint({ installationId: installation.id })).token);
      expect(await rex.resolveInstallation({ owner: installation.account.login })).toBe(installation.id);
      expect(seen(from), `offset ${offset}`).toEqual([`POST ${MINT_PATH(installation.id)} 201`, `GET /orgs/${installation.account.login}/installation 200`]);
      fake.setClockOffset(0);
    }
  });

  it("revokes a token with the token itself; a token already dead counts as revoked", async () => {
    const installation = install();
    const rex = client();
    const minted = await rex.mint({ installationId: installation.id });
    registerSecret(minted.token);
    const from = fake.requests.length;
    await rex.revokeToken(minted.token);
    expect(fake.isInstallationTokenValid(minted.token)).toBe(false);
    await rex.revokeToken(minted.token);
    expect(seen(from)).toEqual(["DELETE /installation/token 204", "DELETE /installation/token 401"]);
    await rex.revokeToken(`ghs_${"x".repeat(200)}`); // never issued: GitHub says 401, which is revoked enough
    expect((await failure(rex.revokeToken(""))).code).toBe("BAD_USER_INPUT");

    fake.failNext("/installation/token", { status: 502 });
    const other = await rex.mint({ installationId: installation.id });
    registerSecret(other.token);
    await rex.revokeToken(other.token);
    expect(fake.isInstallationTokenValid(other.token)).toBe(false);
  });

  it("keeps tokens and JWTs out of every error", async () => {
    const installation = install({ permissions: { metadata: "read" } });
    const rex = client();
    const minted = await rex.mint({ installationId: installation.id });
    registerSecret(minted.token);
    fake.suspend(installation.id);
    const revokeError = await failure(rex.revokeToken(minted.token));
    expect(revokeError).toMatchObject({ code: "PROVIDER_ERROR", httpStatus: 403 });
    expectClean(revokeError, minted.token);
    expectClean(await failure(rex.mint({ installationId: installation.id, permissions: { issues: "write" } })), minted.token);
  });
});

describe("metrics", () => {
  it("counts every upstream outcome by route template, times it, and tracks the remaining rate limit", async () => {
    metrics = createMetrics();
    const installation = install();
    const rex = client();
    fake.failNext(MINT_PATH(installation.id), { status: 502, headers: { "x-ratelimit-remaining": "4321" } });
    registerSecret((await rex.mint({ installationId: installation.id })).token);
    await failure(rex.mint({ installationId: installation.id, repositories: ["nope"] }));
    await failure(rex.mint({ installationId: 999_999_998 }));
    await rex.resolveInstallation({ repository: `${installation.account.login}/api` });
    fake.failNext(MINT_PATH(installation.id), { status: 429, headers: { "retry-after": "1" } });
    registerSecret((await rex.mint({ installationId: installation.id })).token);

    const requests = await metrics.registry.getSingleMetricAsString("keyplane_github_upstream_requests_total");
    const line = (route: string, outcome: string) =>
      new RegExp(`keyplane_github_upstream_requests_total\\{app="rex",route="${route.replace(/[{}/]/g, "\\$&")}",outcome="${outcome}"\\} (\\d+)`);
    const count = (route: string, outcome: string) => Number(line(route, outcome).exec(requests)?.[1] ?? 0);
    expect(count(MINT_ROUTE, "success")).toBe(2);
    expect(count(MINT_ROUTE, "server_error")).toBe(1);
    expect(count(MINT_ROUTE, "unprocessable")).toBe(1);
    expect(count(MINT_ROUTE, "not_found")).toBe(1);
    expect(count(MINT_ROUTE, "rate_limited")).toBe(1);
    expect(count("GET /repos/{owner}/{repo}/installation", "success")).toBe(1);
    // Routes are templates: no installation id, owner or repository in any label.
    expect(requests).not.toContain(String(installation.id));
    expect(requests).not.toContain(installation.account.login);

    const duration = await metrics.registry.getSingleMetricAsString("keyplane_github_upstream_request_duration_seconds");
    expect(duration).toContain(`keyplane_github_upstream_request_duration_seconds_count{app="rex",route="${MINT_ROUTE}",status="201"} 2`);
    expect(duration).toContain(`keyplane_github_upstream_request_duration_seconds_count{app="rex",route="${MINT_ROUTE}",status="502"} 1`);
    expect(duration).not.toContain(String(installation.id));

    const remaining = await metrics.registry.getSingleMetricAsString("keyplane_github_rate_limit_remaining");
    expect(remaining).toContain('keyplane_github_rate_limit_remaining{app="rex",installation="0"} 4321');
  });
});
