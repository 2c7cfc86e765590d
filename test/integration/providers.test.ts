import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createPrivateKey, generateKeyPairSync, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGitHubAppClient } from "../../src/github/appClient.ts";
import type { GitHubApp } from "../../src/github/types.ts";
import { createGitHubProvider } from "../../src/github/installProvider.ts";
import { providerFetch } from "../../src/providers/http.ts";
import { createJiraProvider } from "../../src/providers/jira.ts";
import { ProviderError, type InstallationProvider } from "../../src/providers/provider.ts";
import { createProviders, newPkceVerifier, pkceChallenge } from "../../src/providers/registry.ts";
import { createSlackProvider } from "../../src/providers/slack.ts";
import { startFakeAtlassian, type FakeAtlassian } from "../fakes/atlassian.ts";
import { startFakeGitHub, type FakeGitHub, type FakeGitHubApp } from "../fakes/github.ts";
import { startFakeSlack, type FakeSlack } from "../fakes/slack.ts";

// Each provider against its local fake, the way Keyplane drives it: authorizationUrl -> the browser
// (fetch without following redirects) -> the callback's query -> completeInstallation, then refresh,
// installationInfo and revoke. Keyplane's callback is never served here: only its URL is compared.

const PUBLIC_URL = "http://127.0.0.1:9/keyplane";
const callbackUri = (platform: string) => `${PUBLIC_URL}/oauth/callback/${platform}`;
const TIMEOUT_MS = 5_000;
/** The providers date a token's expiry on Keyplane's clock; here the real one. */
const now = () => new Date();

/** Plays the browser: opens the authorization URL and returns the query the provider sends back to the callback. */
async function browse(url: string, redirectUri: string): Promise<URLSearchParams> {
  const response = await fetch(url, { redirect: "manual" });
  expect(response.status).toBe(302);
  const location = response.headers.get("location");
  expect(location).toBeTruthy();
  const target = new URL(location!);
  expect(`${target.origin}${target.pathname}`).toBe(redirectUri);
  return target.searchParams;
}

/** The ProviderError a promise rejects with (fails the test when it resolves or throws something else). */
async function providerError(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error("expected a ProviderError, the call succeeded");
}

/** A named app's install provider built the way createGitHubApps builds it: the app, its client, the URLs. */
function gitHubProvider(app: GitHubApp, apiUrl: string, timeoutMs = TIMEOUT_MS): InstallationProvider {
  const options = { apiUrl, webUrl: apiUrl, timeoutMs };
  return createGitHubProvider(app, createGitHubAppClient(app, options), options);
}

/** Everything an error could show: message, stack and own fields. */
const everythingIn = (error: ProviderError) => `${error.message}\n${error.stack ?? ""}\n${JSON.stringify({ ...error })}`;

describe("GitHub App provider", () => {
  let gh: FakeGitHub;
  let app: FakeGitHubApp;
  let github: InstallationProvider;
  const redirectUri = callbackUri("github");

  beforeAll(async () => {
    gh = await startFakeGitHub();
    app = await gh.createApp({ slug: "keyplane-test", setupUrl: redirectUri });
    github = gitHubProvider(
      {
        name: "keyplane-test",
        appId: String(app.appId),
        slug: app.slug,
        privateKey: createPrivateKey(app.privateKeyPem),
        clientId: app.clientId,
        clientSecret: app.clientSecret,
      },
      gh.url,
    );
  });
  afterAll(() => gh.close());

  async function install(login: string, type: "Organization" | "User" = "Organization"): Promise<URLSearchParams> {
    gh.setNextInstall({ account: { login, type }, repositories: ["api", "web"], permissions: { contents: "read", metadata: "read", pull_requests: "write" } });
    const state = randomUUID();
    const query = await browse(github.authorizationUrl({ state, redirectUri }), redirectUri);
    expect(query.get("state")).toBe(state);
    return query;
  }

  it("builds the install URL of the app", () => {
    const url = new URL(github.authorizationUrl({ state: "s-1", redirectUri }));
    expect(`${url.origin}${url.pathname}`).toBe(`${gh.url}/apps/keyplane-test/installations/new`);
    expect(url.searchParams.get("state")).toBe("s-1");
    expect(github.usesPkce).toBe(false);
  });

  it("completes an installation, mints installation tokens and refuses refresh", async () => {
    const query = await install("acme");
    expect(query.get("setup_action")).toBe("install");
    const installationId = query.get("installation_id")!;

    const { info, credentials } = await github.completeInstallation({ query, redirectUri });
    expect(credentials).toBeUndefined();
    expect(info).toMatchObject({
      externalId: installationId,
      account: { login: "acme", type: "Organization", url: `${gh.url}/acme` },
      permissions: { contents: "read", metadata: "read", pull_requests: "write" },
      scopes: [],
      repositorySelection: "selected",
      details: { appSlug: "keyplane-test", suspendedAt: null, events: ["pull_request", "push"] },
    });
    expect(info.account.id).toMatch(/^\d+$/);

    const token = await github.mintInstallationToken!(installationId);
    expect(gh.isInstallationTokenValid(token.accessToken)).toBe(true);
    expect(token.scopes).toEqual([]);
    expect(token.refreshToken).toBeUndefined();
    expect(token.expiresAt!.getTime() - Date.now()).toBeGreaterThan(50 * 60_000);

    expect(await github.installationInfo({ externalId: installationId })).toEqual(info);

    const refused = await providerError(github.refresh("anything"));
    expect(refused).toMatchObject({ platform: "github", providerCode: "refresh_unsupported", kind: "invalid" });
  });

  it("refuses a callback claiming an installation the user cannot see", async () => {
    const victim = gh.addInstallation({
      appId: app.appId,
      account: { login: "victim-org", type: "Organization" },
      repositories: ["secrets"],
      permissions: { contents: "read" },
    });
    // mallory installs the app on her own account, then swaps the installation id in the callback.
    const query = await install("mallory", "User");
    query.set("installation_id", String(victim.id));
    const error = await providerError(github.completeInstallation({ query, redirectUri }));
    expect(error).toMatchObject({ providerCode: "installation_not_accessible", kind: "rejected" });
    expect(everythingIn(error)).not.toContain(query.get("code")!);

    // The code was spent on that attempt: presenting it again is GitHub's bad_verification_code.
    const reused = await providerError(github.completeInstallation({ query, redirectUri }));
    expect(reused).toMatchObject({ providerCode: "bad_verification_code", kind: "rejected" });
    expect(everythingIn(reused)).not.toContain(query.get("code")!);
    expect(everythingIn(reused)).not.toContain(app.clientSecret);

    // Once the victim's admin lets mallory see it, the same claim goes through.
    gh.grantUserAccess("mallory", victim.id);
    const again = await install("mallory", "User");
    again.set("installation_id", String(victim.id));
    const { info } = await github.completeInstallation({ query: again, redirectUri });
    expect(info.account.login).toBe("victim-org");
  });

  it("requires the code when the app's OAuth client is configured, and a numeric installation id", async () => {
    const query = await install("needs-code");
    query.delete("code");
    expect(await providerError(github.completeInstallation({ query, redirectUri }))).toMatchObject({ providerCode: "missing_code", kind: "invalid" });
    for (const bad of [null, "", "12abc", "-4", "1e3", "0"]) {
      const q = new URLSearchParams({ code: "x", setup_action: "install" });
      if (bad !== null) q.set("installation_id", bad);
      expect(await providerError(github.completeInstallation({ query: q, redirectUri }))).toMatchObject({
        providerCode: "invalid_installation_id",
        kind: "invalid",
      });
    }
  });

  it("treats an installation an owner must still approve as not installed", async () => {
    const query = new URLSearchParams({ setup_action: "request", state: "s", code: "c" });
    expect(await providerError(github.completeInstallation({ query, redirectUri }))).toMatchObject({ providerCode: "installation_requested", kind: "invalid" });
  });

  it("takes installation_id alone when no OAuth client is configured", async () => {
    const plain = gitHubProvider({ name: "plain", appId: String(app.appId), slug: app.slug, privateKey: createPrivateKey(app.privateKeyPem) }, gh.url);
    const installation = gh.addInstallation({
      appId: app.appId,
      account: { login: "plain-user", type: "User" },
      repositories: ["x"],
      permissions: { metadata: "read" },
      repositorySelection: "all",
    });
    const { info } = await plain.completeInstallation({
      query: new URLSearchParams({ installation_id: String(installation.id), setup_action: "install" }),
      redirectUri,
    });
    expect(info).toMatchObject({ externalId: String(installation.id), account: { login: "plain-user", type: "User" }, repositorySelection: "all" });
  });

  it("maps GitHub's answers: 404 rejected, 5xx and 429 transient", async () => {
    const missing = await providerError(github.installationInfo({ externalId: "999999999" }));
    expect(missing).toMatchObject({ providerCode: "not_found", kind: "rejected", httpStatus: 404 });

    const installation = gh.addInstallation({
      appId: app.appId,
      account: { login: "flaky", type: "Organization" },
      repositories: ["x"],
      permissions: { metadata: "read" },
    });
    gh.failNext("/app/installations", { status: 502 });
    expect(await providerError(github.installationInfo({ externalId: String(installation.id) }))).toMatchObject({ kind: "transient", httpStatus: 502 });
    gh.failNext("/app/installations", { status: 429, body: { message: "API rate limit exceeded" } });
    expect(await providerError(github.mintInstallationToken!(String(installation.id)))).toMatchObject({ kind: "transient", httpStatus: 429 });
    gh.failNext("/app/installations", {
      status: 403,
      body: { message: "API rate limit exceeded for installation" },
      headers: { "x-ratelimit-remaining": "0" },
    });
    expect(await providerError(github.installationInfo({ externalId: String(installation.id) }))).toMatchObject({ kind: "transient", httpStatus: 403 });
    // And the next call goes through.
    expect((await github.installationInfo({ externalId: String(installation.id) })).account.login).toBe("flaky");
  });

  it("refuses tokens for a suspended installation", async () => {
    const installation = gh.addInstallation({
      appId: app.appId,
      account: { login: "paused", type: "Organization" },
      repositories: ["x"],
      permissions: { metadata: "read" },
    });
    gh.suspend(installation.id);
    const error = await providerError(github.mintInstallationToken!(String(installation.id)));
    expect(error).toMatchObject({ providerCode: "this_installation_has_been_suspended", kind: "rejected", httpStatus: 403 });
    expect((await github.installationInfo({ externalId: String(installation.id) })).details).toMatchObject({ suspendedAt: expect.any(String) });
  });

  it("revokes by uninstalling; uninstalling again is a no-op", async () => {
    const query = await install("leaving-org");
    const { info } = await github.completeInstallation({ query, redirectUri });
    const token = await github.mintInstallationToken!(info.externalId);
    await github.revoke({ externalId: info.externalId });
    expect(gh.getInstallation(Number(info.externalId))).toBeUndefined();
    expect(gh.isInstallationTokenValid(token.accessToken)).toBe(false);
    await github.revoke({ externalId: info.externalId });
    expect(await providerError(github.installationInfo({ externalId: info.externalId }))).toMatchObject({ kind: "rejected", httpStatus: 404 });
  });

  it("reports a private key GitHub does not know as rejected, without the JWT", async () => {
    const other = await gh.createApp({ slug: "keyplane-other" });
    const wrongKey = gitHubProvider({ name: "wrong-key", appId: String(app.appId), slug: app.slug, privateKey: createPrivateKey(other.privateKeyPem) }, gh.url);
    const installation = gh.addInstallation({
      appId: app.appId,
      account: { login: "keyless", type: "Organization" },
      repositories: ["x"],
      permissions: { metadata: "read" },
    });
    const error = await providerError(wrongKey.mintInstallationToken!(String(installation.id)));
    expect(error).toMatchObject({ platform: "github", kind: "rejected", httpStatus: 401 });
    expect(everythingIn(error)).not.toMatch(/eyJ/); // no JWT
  });
});

describe("Slack provider", () => {
  let slack: FakeSlack;
  let provider: InstallationProvider;
  const redirectUri = callbackUri("slack");
  const clientId = "2141029472.691202649728";
  const clientSecret = `slack-secret-${randomUUID()}`;

  beforeAll(async () => {
    slack = await startFakeSlack({ clientId, clientSecret, redirectUri });
    provider = createSlackProvider({ clientId, clientSecret, scopes: ["chat:write", "channels:read", "team:read"], apiUrl: slack.apiUrl }, TIMEOUT_MS, now);
  });
  afterAll(() => slack.close());

  async function install(team = { id: `T0${randomUUID().slice(0, 8).toUpperCase()}`, name: "Acme", domain: "acme" }) {
    slack.setNextTeam(team);
    const query = await browse(provider.authorizationUrl({ state: "st", redirectUri }), redirectUri);
    expect(query.get("state")).toBe("st");
    return { team, query, completed: await provider.completeInstallation({ query, redirectUri }) };
  }

  it("builds the authorize URL beside the API", () => {
    const url = new URL(provider.authorizationUrl({ state: "s-2", redirectUri }));
    expect(`${url.origin}${url.pathname}`).toBe(`${slack.url}/oauth/v2/authorize`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      client_id: clientId,
      scope: "chat:write,channels:read,team:read",
      redirect_uri: redirectUri,
      state: "s-2",
    });
  });

  it("completes an installation with rotating credentials and the workspace's facts", async () => {
    const { team, completed } = await install();
    const { info, credentials } = completed;
    expect(credentials!.accessToken).toMatch(/^xoxe\.xoxb-/);
    expect(credentials!.refreshToken).toMatch(/^xoxe-1-/);
    expect(credentials!.scopes).toEqual(["chat:write", "channels:read", "team:read"]);
    expect(credentials!.expiresAt!.getTime() - Date.now()).toBeGreaterThan(11 * 3600_000);
    expect(info).toMatchObject({
      externalId: team.id,
      account: { id: team.id, login: "Acme", type: "team", url: "https://acme.slack.com" },
      scopes: ["chat:write", "channels:read", "team:read"],
      details: { appId: slack.appId, botUserId: expect.stringMatching(/^U/) },
    });
    expect(await provider.installationInfo({ externalId: team.id, accessToken: credentials!.accessToken })).toMatchObject({
      externalId: team.id,
      account: info.account,
    });
  });

  it("rotates the refresh token; the spent one is rejected", async () => {
    const { team, completed } = await install();
    const first = completed.credentials!;
    const before = slack.refreshCount;
    const second = await provider.refresh(first.refreshToken!);
    expect(slack.refreshCount).toBe(before + 1);
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(second.refreshToken).toBeTruthy();
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.expiresAt).toBeInstanceOf(Date);
    expect(second.scopes).toEqual(["chat:write", "channels:read", "team:read"]);

    const reuses = slack.refreshTokenReuseCount;
    const reused = await providerError(provider.refresh(first.refreshToken!));
    expect(reused).toMatchObject({ platform: "slack", providerCode: "invalid_refresh_token", kind: "rejected" });
    expect(slack.refreshTokenReuseCount).toBe(reuses + 1);
    expect(everythingIn(reused)).not.toContain(first.refreshToken!);
    expect(everythingIn(reused)).not.toContain(clientSecret);

    const third = await provider.refresh(second.refreshToken!);
    expect((await provider.installationInfo({ externalId: team.id, accessToken: third.accessToken })).externalId).toBe(team.id);
  });

  it("maps refusals, Slack errors and outages", async () => {
    slack.denyNext();
    const denied = await browse(provider.authorizationUrl({ state: "d", redirectUri }), redirectUri);
    expect(await providerError(provider.completeInstallation({ query: denied, redirectUri }))).toMatchObject({
      providerCode: "access_denied",
      kind: "rejected",
    });

    const { team, query, completed } = await install();
    // A code works once.
    const spent = await providerError(provider.completeInstallation({ query, redirectUri }));
    expect(spent).toMatchObject({ providerCode: "invalid_code", kind: "invalid" });
    expect(everythingIn(spent)).not.toContain(query.get("code")!);

    const token = completed.credentials!.accessToken;
    slack.failNext("team.info", { status: 503 });
    expect(await providerError(provider.installationInfo({ externalId: team.id, accessToken: token }))).toMatchObject({ kind: "transient", httpStatus: 503 });
    slack.failNext("team.info", { status: 429, retryAfterSeconds: 1 });
    expect(await providerError(provider.installationInfo({ externalId: team.id, accessToken: token }))).toMatchObject({
      providerCode: "rate_limited",
      kind: "transient",
      httpStatus: 429,
    });
    slack.failNext("oauth.v2.access", { error: "ratelimited" });
    expect(await providerError(provider.refresh(completed.credentials!.refreshToken!))).toMatchObject({ providerCode: "ratelimited", kind: "transient" });
    slack.failNext("oauth.v2.access", { error: "internal_error" });
    expect(await providerError(provider.refresh(completed.credentials!.refreshToken!))).toMatchObject({ kind: "transient" });
    // Those failures spent nothing: the refresh token still works.
    await provider.refresh(completed.credentials!.refreshToken!);

    slack.expireAccessToken(token);
    const expired = await providerError(provider.installationInfo({ externalId: team.id, accessToken: token }));
    expect(expired).toMatchObject({ providerCode: "token_expired", kind: "rejected" });
    expect(everythingIn(expired)).not.toContain(token);

    expect(
      await providerError(provider.installationInfo({ externalId: "T0SOMEONEELSE", accessToken: (await install()).completed.credentials!.accessToken })),
    ).toMatchObject({
      providerCode: "team_mismatch",
    });
  });

  it("revokes with auth.revoke; an already dead token counts as revoked", async () => {
    const { team, completed } = await install();
    const { accessToken, refreshToken } = completed.credentials!;
    await provider.revoke({ externalId: team.id, accessToken });
    expect(slack.isAccessTokenValid(accessToken)).toBe(false);
    await provider.revoke({ externalId: team.id, accessToken });
    await provider.revoke({ externalId: team.id, accessToken: "xoxb-never-issued" });
    expect(await providerError(provider.refresh(refreshToken!))).toMatchObject({ kind: "rejected" });
    expect(await providerError(provider.installationInfo({ externalId: team.id, accessToken }))).toMatchObject({
      providerCode: "token_revoked",
      kind: "rejected",
    });
  });
});

describe("Jira (Atlassian 3LO) provider", () => {
  let atlassian: FakeAtlassian;
  let jira: InstallationProvider;
  const redirectUri = callbackUri("jira");
  const clientId = `atl-${randomUUID()}`;
  const clientSecret = `atl-secret-${randomUUID()}`;

  beforeAll(async () => {
    atlassian = await startFakeAtlassian({ clientId, clientSecret, redirectUri });
    // offline_access left out on purpose: the provider adds it.
    jira = createJiraProvider(
      { clientId, clientSecret, scopes: ["read:jira-work", "write:jira-work"], authUrl: atlassian.url, apiUrl: atlassian.url },
      TIMEOUT_MS,
      now,
    );
  });
  afterAll(() => atlassian.close());

  const site = (name: string) => ({ id: randomUUID(), name, url: `https://${name}.atlassian.net` });

  async function install(sites = [site("acme")]) {
    atlassian.setNextSites(sites);
    const codeVerifier = newPkceVerifier();
    const state = randomUUID();
    const query = await browse(jira.authorizationUrl({ state, redirectUri, codeChallenge: pkceChallenge(codeVerifier) }), redirectUri);
    expect(query.get("state")).toBe(state);
    return { sites, query, codeVerifier };
  }

  it("builds the consent URL with PKCE and offline_access", () => {
    expect(jira.usesPkce).toBe(true);
    const url = new URL(jira.authorizationUrl({ state: "s-3", redirectUri, codeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" }));
    expect(`${url.origin}${url.pathname}`).toBe(`${atlassian.url}/authorize`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      audience: "api.atlassian.com",
      client_id: clientId,
      scope: "read:jira-work write:jira-work offline_access",
      redirect_uri: redirectUri,
      state: "s-3",
      response_type: "code",
      prompt: "consent",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      code_challenge_method: "S256",
    });
    expect(() => jira.authorizationUrl({ state: "s", redirectUri })).toThrow(ProviderError);
  });

  it("completes an installation into the first site and lists the others", async () => {
    const sites = [site("acme"), site("beta")];
    const { query, codeVerifier } = await install(sites);
    const { info, credentials } = await jira.completeInstallation({ query, redirectUri, codeVerifier });
    expect(credentials!.accessToken).toBeTruthy();
    expect(credentials!.refreshToken).toBeTruthy();
    expect(credentials!.scopes).toEqual(["read:jira-work", "write:jira-work", "offline_access"]);
    expect(credentials!.expiresAt!.getTime() - Date.now()).toBeGreaterThan(50 * 60_000);
    expect(info).toEqual({
      externalId: sites[0]!.id,
      account: { id: sites[0]!.id, login: "acme", type: "site", url: "https://acme.atlassian.net" },
      permissions: {},
      scopes: ["read:jira-work", "write:jira-work"],
      details: { sites: [{ id: sites[1]!.id, name: "beta", url: "https://beta.atlassian.net" }] },
    });
    expect(await jira.installationInfo({ externalId: sites[0]!.id, accessToken: credentials!.accessToken })).toEqual(info);
    expect(await providerError(jira.installationInfo({ externalId: randomUUID(), accessToken: credentials!.accessToken }))).toMatchObject({
      providerCode: "site_not_accessible",
      kind: "rejected",
    });
  });

  it("needs the PKCE verifier that matches the challenge", async () => {
    const { query } = await install();
    expect(await providerError(jira.completeInstallation({ query, redirectUri }))).toMatchObject({ providerCode: "missing_code_verifier", kind: "invalid" });
    const wrong = await providerError(jira.completeInstallation({ query, redirectUri, codeVerifier: newPkceVerifier() }));
    expect(wrong).toMatchObject({ providerCode: "invalid_grant", kind: "rejected", httpStatus: 403 });
    expect(everythingIn(wrong)).not.toContain(query.get("code")!);

    atlassian.denyNext();
    const denied = await browse(jira.authorizationUrl({ state: "d", redirectUri, codeChallenge: pkceChallenge(newPkceVerifier()) }), redirectUri);
    expect(await providerError(jira.completeInstallation({ query: denied, redirectUri, codeVerifier: "v" }))).toMatchObject({
      providerCode: "access_denied",
      kind: "rejected",
    });
  });

  it("rotates refresh tokens: the returned one replaces the old, reusing the old is rejected", async () => {
    const { query, codeVerifier, sites } = await install();
    const { credentials } = await jira.completeInstallation({ query, redirectUri, codeVerifier });
    const first = credentials!;
    const count = atlassian.refreshCount;

    const second = await jira.refresh(first.refreshToken!);
    expect(atlassian.refreshCount).toBe(count + 1);
    expect(second.refreshToken).toBeTruthy();
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.accessToken).not.toBe(first.accessToken);
    expect((await jira.installationInfo({ externalId: sites[0]!.id, accessToken: second.accessToken })).externalId).toBe(sites[0]!.id);

    const third = await jira.refresh(second.refreshToken!);
    expect(atlassian.refreshCount).toBe(count + 2);

    const reuses = atlassian.refreshTokenReuseCount;
    const reused = await providerError(jira.refresh(first.refreshToken!));
    expect(reused).toMatchObject({ platform: "jira", providerCode: "invalid_grant", kind: "rejected", httpStatus: 403 });
    expect(atlassian.refreshTokenReuseCount).toBe(reuses + 1);
    expect(everythingIn(reused)).not.toContain(first.refreshToken!);
    expect(everythingIn(reused)).not.toContain(clientSecret);
    // Reuse is taken as theft: the whole grant is gone, the newest refresh token too.
    expect(await providerError(jira.refresh(third.refreshToken!))).toMatchObject({ providerCode: "invalid_grant", kind: "rejected" });
  });

  it("maps outages to transient and an expired access token to rejected", async () => {
    const { query, codeVerifier, sites } = await install();
    const { credentials } = await jira.completeInstallation({ query, redirectUri, codeVerifier });
    atlassian.failNextRefresh({ status: 503 });
    expect(await providerError(jira.refresh(credentials!.refreshToken!))).toMatchObject({ kind: "transient", httpStatus: 503 });
    const next = await jira.refresh(credentials!.refreshToken!);
    atlassian.expireAccessTokens();
    const expired = await providerError(jira.installationInfo({ externalId: sites[0]!.id, accessToken: next.accessToken }));
    expect(expired).toMatchObject({ kind: "rejected", httpStatus: 401 });
    expect(everythingIn(expired)).not.toContain(next.accessToken);
  });

  it("revokes without any request (Atlassian has no revocation endpoint)", async () => {
    const before = atlassian.requests.length;
    await jira.revoke({ externalId: randomUUID(), accessToken: "whatever" });
    expect(atlassian.requests.length).toBe(before);
  });

  it("refuses wrong client credentials as Keyplane's fault, not the grant's", async () => {
    const misconfigured = createJiraProvider(
      { clientId, clientSecret: "wrong", scopes: ["read:jira-work"], authUrl: atlassian.url, apiUrl: atlassian.url },
      TIMEOUT_MS,
      now,
    );
    expect(await providerError(misconfigured.refresh("some-refresh-token"))).toMatchObject({ providerCode: "access_denied", kind: "invalid", httpStatus: 401 });
  });
});

describe("providers: registry, PKCE, HTTP failures", () => {
  it("creates only the configured providers", () => {
    const providers = createProviders(
      {
        publicUrl: PUBLIC_URL,
        timeoutMs: TIMEOUT_MS,
        slack: { clientId: "c", clientSecret: "s", scopes: ["team:read"], apiUrl: "https://slack.com/api" },
      },
      now,
    );
    expect(Object.keys(providers)).toEqual(["slack"]);
    expect(providers.slack!.platform).toBe("slack");
    expect(Object.keys(createProviders({ publicUrl: PUBLIC_URL, timeoutMs: TIMEOUT_MS }, now))).toEqual([]);
  });

  it("computes S256 challenges (RFC 7636 appendix B) and fresh verifiers", () => {
    expect(pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    const verifier = newPkceVerifier();
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
    expect(newPkceVerifier()).not.toBe(verifier);
  });

  describe("against a server that stalls or is gone", () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      // Accepts the request and never answers.
      server = createServer(() => undefined);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it("times out as transient, without the token in the error", async () => {
      const token = `xoxb-${randomUUID()}`;
      const error = await providerError(providerFetch("slack", 200, { url: `${url}/api/team.info`, bearer: token }));
      expect(error).toMatchObject({ providerCode: "timeout", kind: "transient" });
      expect(everythingIn(error)).not.toContain(token);

      const slow = createSlackProvider({ clientId: "c", clientSecret: "s", scopes: ["team:read"], apiUrl: `${url}/api` }, 200, now);
      expect(await providerError(slow.refresh(`xoxe-1-${randomUUID()}`))).toMatchObject({ providerCode: "timeout", kind: "transient" });
      const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const slowGitHub = gitHubProvider({ name: "slow", appId: "1", slug: "s", privateKey }, url, 200);
      const githubError = await providerError(slowGitHub.installationInfo({ externalId: "7" }));
      expect(githubError).toMatchObject({ providerCode: "timeout", kind: "transient" });
      expect(everythingIn(githubError)).not.toMatch(/eyJ/);
    });

    it("turns a refused connection into transient network_error", async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", () => resolve()));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const jira = createJiraProvider(
        { clientId: "c", clientSecret: "s", scopes: ["read:jira-work"], authUrl: `http://127.0.0.1:${port}`, apiUrl: `http://127.0.0.1:${port}` },
        1000,
        now,
      );
      expect(await providerError(jira.refresh("r"))).toMatchObject({ providerCode: "network_error", kind: "transient" });
    });
  });
});
