import { createHash, createHmac, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GITHUB_JWT_MESSAGES, startFakeGitHub, type FakeGitHub, type FakeGitHubApp } from "../fakes/github.ts";
import { startFakeSlack, type FakeSlack } from "../fakes/slack.ts";
import { startFakeAtlassian, type FakeAtlassian } from "../fakes/atlassian.ts";

// The fakes must refuse what the real services refuse; these tests pin that down with plain fetch.

const form = (fields: Record<string, string>) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams(fields).toString(),
});
const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});
const location = (res: Response) => new URL(res.headers.get("location") ?? "http://missing.invalid/");

describe("fake GitHub", () => {
  let github: FakeGitHub;
  let app: FakeGitHubApp;
  let key: KeyObject;
  const sec = () => Math.floor(github.now() / 1000);
  const appJwt = (claims: { iat?: number; exp?: number; iss?: string | number } = {}, signingKey: KeyObject = key) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "RS256" })
      .setIssuer(String(claims.iss ?? app.clientId))
      .setIssuedAt(claims.iat ?? sec() - 60)
      .setExpirationTime(claims.exp ?? sec() + 540)
      .sign(signingKey);
  const asApp = async (path: string, init: RequestInit = {}, token?: string) =>
    fetch(`${github.url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token ?? (await appJwt())}` } });

  beforeAll(async () => {
    github = await startFakeGitHub();
    app = await github.createApp({ slug: "keyplane-test", setupUrl: "http://127.0.0.1:9/github/setup?from=gh" });
    key = createPrivateKey(app.privateKeyPem);
  });
  afterAll(() => github.close());

  it("hands out a PKCS#1 key like GitHub, and accepts the JWT of GitHub's own example (iat 60 s back, exp 10 min ahead, numeric iss)", async () => {
    expect(app.privateKeyPem).toContain("BEGIN RSA PRIVATE KEY");
    const res = await asApp("/app", {}, await appJwt({ iat: sec() - 60, exp: sec() + 600, iss: app.appId }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: app.appId, slug: "keyplane-test", client_id: app.clientId });
    expect(Date.parse(res.headers.get("date")!)).toBeGreaterThan(0);
  });

  it("refuses a JWT signed with another key, or one sent with the token scheme", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const res = await asApp("/app", {}, await appJwt({}, other));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ message: GITHUB_JWT_MESSAGES.decode, documentation_url: expect.any(String) });
    const tokenScheme = await fetch(`${github.url}/app`, { headers: { authorization: `token ${await appJwt()}` } });
    expect(tokenScheme.status).toBe(401);
  });

  it("refuses exp 11 minutes ahead, iat in the future, and an expired JWT, with GitHub's messages", async () => {
    const tooFar = await asApp("/app", {}, await appJwt({ iat: sec(), exp: sec() + 660 }));
    expect(tooFar.status).toBe(401);
    expect((await tooFar.json()).message).toBe(GITHUB_JWT_MESSAGES.expTooFar);
    const future = await asApp("/app", {}, await appJwt({ iat: sec() + 5, exp: sec() + 300 }));
    expect(future.status).toBe(401);
    expect((await future.json()).message).toBe(GITHUB_JWT_MESSAGES.iat);
    const expired = await asApp("/app", {}, await appJwt({ iat: sec() - 700, exp: sec() - 1 }));
    expect(expired.status).toBe(401);
    expect((await expired.json()).message).toBe(GITHUB_JWT_MESSAGES.expired);
  });

  it("judges time by its own clock, which the Date header reports", async () => {
    github.setClockOffset(-120_000); // GitHub 2 minutes behind this machine
    try {
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: "RS256" })
        .setIssuer(app.clientId)
        .setIssuedAt(Math.floor(Date.now() / 1000) - 30)
        .setExpirationTime(Math.floor(Date.now() / 1000) + 570)
        .sign(key);
      const res = await asApp("/app", {}, jwt);
      expect(res.status).toBe(401);
      // What GitHub answers a client whose clock is ahead (octokit/auth-app.js#698); exp is checked before iat.
      expect((await res.json()).message).toBe(GITHUB_JWT_MESSAGES.expTooFar);
      expect(Date.now() - Date.parse(res.headers.get("date")!)).toBeGreaterThan(100_000);
    } finally {
      github.setClockOffset(0);
    }
  });

  it("issues installation tokens (ghs_, longer than 40 characters, expires_at in an hour without ms) that work until revoked", async () => {
    const installation = github.addInstallation({
      appId: app.appId,
      account: { login: "octo-org", type: "Organization" },
      repositories: ["api", "web"],
      permissions: { contents: "read", metadata: "read" },
    });
    const res = await asApp(`/app/installations/${installation.id}/access_tokens`, json({ repositories: ["api"] }));
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body.token).toMatch(/^ghs_[A-Za-z0-9]{52}$/);
    expect(body.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(3_590_000);
    expect(body).toMatchObject({ permissions: { contents: "read", metadata: "read" }, repository_selection: "selected" });
    expect(body.repositories.map((r: { full_name: string }) => r.full_name)).toEqual(["octo-org/api"]);

    const repos = await fetch(`${github.url}/installation/repositories`, { headers: { authorization: `token ${body.token}` } });
    expect(repos.status).toBe(200);
    expect((await repos.json()).repositories.map((r: { name: string }) => r.name)).toEqual(["api"]);

    const revoke = await fetch(`${github.url}/installation/token`, { method: "DELETE", headers: { authorization: `Bearer ${body.token}` } });
    expect(revoke.status).toBe(204);
    const after = await fetch(`${github.url}/installation/repositories`, { headers: { authorization: `token ${body.token}` } });
    expect(after.status).toBe(401);
    expect((await after.json()).message).toBe("Bad credentials");
  });

  it("refuses a permission beyond the installation's and a repository outside it (422), a suspended installation (403), an unknown one (404)", async () => {
    const installation = github.addInstallation({
      appId: app.appId,
      account: { login: "suspend-me", type: "User" },
      repositories: ["dotfiles"],
      permissions: { contents: "read", metadata: "read" },
    });
    const path = `/app/installations/${installation.id}/access_tokens`;
    const tooMuch = await asApp(path, json({ permissions: { contents: "write" } }));
    expect(tooMuch.status).toBe(422);
    expect((await tooMuch.json()).message).toMatch(/permissions requested are not granted/);
    const notGranted = await asApp(path, json({ permissions: { issues: "read" } }));
    expect(notGranted.status).toBe(422);
    const outside = await asApp(path, json({ repositories: ["secret-repo"] }));
    expect(outside.status).toBe(422);
    const valid = await (await asApp(path, { method: "POST" })).json();
    expect(github.isInstallationTokenValid(valid.token)).toBe(true);

    github.suspend(installation.id);
    const suspended = await asApp(path, { method: "POST" });
    expect(suspended.status).toBe(403);
    expect((await suspended.json()).message).toBe("This installation has been suspended");
    const use = await fetch(`${github.url}/installation/repositories`, { headers: { authorization: `token ${valid.token}` } });
    expect(use.status).toBe(403);
    github.unsuspend(installation.id);

    expect((await asApp(`/app/installations/999/access_tokens`, { method: "POST" })).status).toBe(404);
    expect((await asApp(`/app/installations/${installation.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await asApp(`/app/installations/${installation.id}`)).status).toBe(404);
    expect(github.isInstallationTokenValid(valid.token)).toBe(false);
  });

  it("install redirect carries installation_id, setup_action and state, plus a one-time OAuth code for GET /user/installations", async () => {
    github.setNextInstall({
      account: { login: "install-org", type: "Organization" },
      repositories: ["one"],
      permissions: { metadata: "read" },
      installedBy: "alice",
    });
    const res = await fetch(`${github.url}/apps/keyplane-test/installations/new?state=st-123`, { redirect: "manual" });
    expect(res.status).toBe(302);
    const target = location(res);
    expect(`${target.origin}${target.pathname}`).toBe("http://127.0.0.1:9/github/setup");
    expect(target.searchParams.get("from")).toBe("gh");
    expect(target.searchParams.get("setup_action")).toBe("install");
    expect(target.searchParams.get("state")).toBe("st-123");
    const installationId = Number(target.searchParams.get("installation_id"));
    expect(github.getInstallation(installationId)?.account.login).toBe("install-org");

    const code = target.searchParams.get("code")!;
    const exchange = { client_id: app.clientId, client_secret: app.clientSecret, code };
    const tokenRes = await fetch(`${github.url}/login/oauth/access_token`, json(exchange, { accept: "application/json" }));
    const token = await tokenRes.json();
    expect(token).toMatchObject({ access_token: expect.stringMatching(/^ghu_/), token_type: "bearer", scope: "" });
    const again = await (await fetch(`${github.url}/login/oauth/access_token`, json(exchange, { accept: "application/json" }))).json();
    expect(again.error).toBe("bad_verification_code");

    const mine = await (await fetch(`${github.url}/user/installations`, { headers: { authorization: `Bearer ${token.access_token}` } })).json();
    expect(mine.installations.map((i: { id: number }) => i.id)).toEqual([installationId]);
    expect((await fetch(`${github.url}/apps/nope/installations/new`, { redirect: "manual" })).status).toBe(404);
  });

  it("refuses a redirect_uri outside the app's callback URLs when it has some", async () => {
    const strict = await github.createApp({
      slug: "strict-app",
      setupUrl: "http://127.0.0.1:9/setup",
      callbackUrls: ["http://127.0.0.1:9/oauth/callback/github"],
    });
    const res = await fetch(`${github.url}/apps/strict-app/installations/new?state=s`, { redirect: "manual" });
    const code = location(res).searchParams.get("code")!;
    const exchange = (redirect_uri: string) =>
      fetch(
        `${github.url}/login/oauth/access_token`,
        json({ client_id: strict.clientId, client_secret: strict.clientSecret, code, redirect_uri }, { accept: "application/json" }),
      ).then((r) => r.json());
    expect((await exchange("http://127.0.0.1:9/elsewhere")).error).toBe("redirect_uri_mismatch");
    expect((await exchange("http://127.0.0.1:9/oauth/callback/github")).access_token).toMatch(/^ghu_/);
  });

  it("signs webhooks with HMAC-SHA256 of the exact body and applies installation events to its state", async () => {
    const received: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/github`;
      const installation = github.addInstallation({
        appId: app.appId,
        account: { login: "hooked", type: "Organization" },
        repositories: ["a"],
        permissions: { metadata: "read" },
      });
      const payload = github.installationRepositoriesEvent(installation.id, { added: ["b"], removed: ["a"] });
      expect(github.getInstallation(installation.id)?.repositories).toEqual(["b"]);
      const result = await github.deliverWebhook(target, { event: "installation_repositories", payload });
      expect(result.status).toBe(202);
      const [delivery] = received;
      expect(delivery!.headers["x-github-event"]).toBe("installation_repositories");
      expect(delivery!.headers["x-github-hook-installation-target-id"]).toBe(String(app.appId));
      expect(delivery!.headers["x-hub-signature-256"]).toBe(`sha256=${createHmac("sha256", app.webhookSecret).update(delivery!.body).digest("hex")}`);

      const deleted = github.installationEvent(installation.id, "deleted");
      expect(deleted).toMatchObject({ action: "deleted", installation: { id: installation.id } });
      expect(github.getInstallation(installation.id)).toBeUndefined();
    } finally {
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it("fails once on demand", async () => {
    github.failNext("/app", { status: 502 });
    expect((await asApp("/app")).status).toBe(502);
    expect((await asApp("/app")).status).toBe(200);
    expect(github.requests.every((r) => !r.path.includes("?"))).toBe(true);
  });
});

describe("fake Slack", () => {
  const redirectUri = "http://127.0.0.1:9/slack/callback";
  let slack: FakeSlack;
  const clientId = "1111.2222";
  const clientSecret = "slack-client-secret-0123456789";

  beforeAll(async () => {
    slack = await startFakeSlack({ clientId, clientSecret, redirectUri });
  });
  afterAll(() => slack.close());

  const authorizeUrl = (params: Record<string, string>) =>
    `${slack.url}/oauth/v2/authorize?${new URLSearchParams({ client_id: clientId, scope: "team:read,chat:write", redirect_uri: redirectUri, state: "s1", ...params })}`;
  const consent = async (params: Record<string, string> = {}) => {
    const res = await fetch(authorizeUrl(params), { redirect: "manual" });
    expect(res.status).toBe(302);
    return location(res);
  };
  const access = (fields: Record<string, string>) => fetch(`${slack.apiUrl}/oauth.v2.access`, form(fields)).then((r) => r.json());
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`;

  it("shows an error page, without redirecting, for an unknown client or a redirect_uri that differs from the registered one", async () => {
    const wrongRedirect = await fetch(authorizeUrl({ redirect_uri: "http://127.0.0.1:9/elsewhere" }), { redirect: "manual" });
    expect(wrongRedirect.status).toBe(400);
    expect(wrongRedirect.headers.get("location")).toBeNull();
    expect(await wrongRedirect.text()).toContain("redirect_uri did not match");
    expect((await fetch(authorizeUrl({ client_id: "nope" }), { redirect: "manual" })).status).toBe(400);
    slack.denyNext();
    const denied = await consent();
    expect(denied.searchParams.get("error")).toBe("access_denied");
    expect(denied.searchParams.get("state")).toBe("s1");
  });

  it("exchanges a code once, only with the same redirect_uri and the right secret", async () => {
    slack.setNextTeam({ id: "T0FAKE123", name: "Acme", domain: "acme" });
    const code = (await consent()).searchParams.get("code")!;
    expect((await access({ client_id: clientId, client_secret: "wrong", code, redirect_uri: redirectUri })).error).toBe("bad_client_secret");
    expect((await access({ client_id: clientId, client_secret: clientSecret, code })).error).toBe("bad_redirect_uri");
    const first = await access({ client_id: clientId, client_secret: clientSecret, code, redirect_uri: redirectUri });
    expect(first).toMatchObject({
      ok: true,
      token_type: "bot",
      scope: "team:read,chat:write",
      team: { id: "T0FAKE123", name: "Acme" },
      enterprise: null,
      is_enterprise_install: false,
      expires_in: 43200,
    });
    expect(first.access_token).toMatch(/^xoxe\.xoxb-1-/);
    expect(first.refresh_token).toMatch(/^xoxe-1-/);
    const reuse = await access({ client_id: clientId, client_secret: clientSecret, code, redirect_uri: redirectUri });
    expect(reuse).toEqual({ ok: false, error: "invalid_code" });
  });

  it("rotates refresh tokens: a spent one is refused, and an expired or revoked access token is refused", async () => {
    const code = (await consent()).searchParams.get("code")!;
    const first = await (
      await fetch(`${slack.apiUrl}/oauth.v2.access`, {
        ...form({ code, redirect_uri: redirectUri }),
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
      })
    ).json();
    const refreshed = await access({ client_id: clientId, client_secret: clientSecret, grant_type: "refresh_token", refresh_token: first.refresh_token });
    expect(refreshed.ok).toBe(true);
    expect(refreshed.refresh_token).not.toBe(first.refresh_token);
    expect(slack.refreshCount).toBe(1);
    const reuse = await access({ client_id: clientId, client_secret: clientSecret, grant_type: "refresh_token", refresh_token: first.refresh_token });
    expect(reuse).toEqual({ ok: false, error: "invalid_refresh_token" });
    expect(slack.refreshTokenReuseCount).toBe(1);

    const teamInfo = (token: string) => fetch(`${slack.apiUrl}/team.info`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
    expect(await teamInfo(refreshed.access_token)).toMatchObject({ ok: true, team: { domain: expect.any(String), icon: expect.any(Object) } });
    slack.expireAccessToken(refreshed.access_token);
    expect(await teamInfo(refreshed.access_token)).toEqual({ ok: false, error: "token_expired" });

    const fresh = await access({ client_id: clientId, client_secret: clientSecret, grant_type: "refresh_token", refresh_token: refreshed.refresh_token });
    const revoke = await fetch(`${slack.apiUrl}/auth.revoke`, form({ token: fresh.access_token })).then((r) => r.json());
    expect(revoke).toEqual({ ok: true, revoked: true });
    expect(await teamInfo(fresh.access_token)).toEqual({ ok: false, error: "token_revoked" });
    expect((await access({ client_id: clientId, client_secret: clientSecret, grant_type: "refresh_token", refresh_token: fresh.refresh_token })).error).toBe(
      "invalid_refresh_token",
    );
    expect(await teamInfo("xoxb-unknown")).toEqual({ ok: false, error: "invalid_auth" });
    expect(await fetch(`${slack.apiUrl}/team.info`).then((r) => r.json())).toEqual({ ok: false, error: "not_authed" });
  });

  it("reports missing_scope with needed and provided, and fails once on demand", async () => {
    const code = (await consent({ scope: "chat:write" })).searchParams.get("code")!;
    const { access_token } = await access({ client_id: clientId, client_secret: clientSecret, code, redirect_uri: redirectUri });
    const res = await fetch(`${slack.apiUrl}/team.info`, { headers: { authorization: `Bearer ${access_token}` } }).then((r) => r.json());
    expect(res).toEqual({ ok: false, error: "missing_scope", needed: "team:read", provided: "chat:write" });
    slack.failNext("auth.test", { status: 503 });
    expect((await fetch(`${slack.apiUrl}/auth.test`, { method: "POST", headers: { authorization: `Bearer ${access_token}` } })).status).toBe(503);
    expect(
      await fetch(`${slack.apiUrl}/auth.test`, { method: "POST", headers: { authorization: `Bearer ${access_token}` } }).then((r) => r.json()),
    ).toMatchObject({
      ok: true,
    });
  });
});

describe("fake Atlassian", () => {
  const redirectUri = "http://127.0.0.1:9/atlassian/callback";
  const clientId = "atl-client-id";
  const clientSecret = "atl-client-secret-0123456789";
  const cloudId = "11111111-2222-4333-8444-555555555555";
  let atlassian: FakeAtlassian;

  beforeAll(async () => {
    atlassian = await startFakeAtlassian({ clientId, clientSecret, redirectUri });
  });
  afterAll(() => atlassian.close());

  const pkce = () => {
    const verifier = randomBytes(32).toString("base64url");
    return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
  };
  const consent = async (challenge: string, scope = "read:jira-user read:jira-work offline_access") => {
    atlassian.setNextSites([{ id: cloudId, name: "acme", url: "https://acme.atlassian.net" }]);
    const params = new URLSearchParams({
      audience: "api.atlassian.com",
      client_id: clientId,
      scope,
      redirect_uri: redirectUri,
      state: "st",
      response_type: "code",
      prompt: "consent",
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    const res = await fetch(`${atlassian.url}/authorize?${params}`, { redirect: "manual" });
    expect(res.status).toBe(302);
    const target = location(res);
    expect(target.searchParams.get("state")).toBe("st");
    return target.searchParams.get("code")!;
  };
  const tokenRequest = (body: Record<string, string>) =>
    fetch(`${atlassian.url}/oauth/token`, json({ client_id: clientId, client_secret: clientSecret, ...body }));
  const exchange = async () => {
    const { verifier, challenge } = pkce();
    const code = await consent(challenge);
    const res = await tokenRequest({ grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier });
    expect(res.status).toBe(200);
    return res.json();
  };
  const refresh = (refreshToken: string) => tokenRequest({ grant_type: "refresh_token", refresh_token: refreshToken });
  const myself = (accessToken: string) =>
    fetch(`${atlassian.url}/ex/jira/${cloudId}/rest/api/3/myself`, { headers: { authorization: `Bearer ${accessToken}` } });

  it("refuses a wrong PKCE verifier, a missing challenge, and a reused code", async () => {
    const { challenge } = pkce();
    const code = await consent(challenge);
    const wrong = await tokenRequest({ grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: pkce().verifier });
    expect(wrong.status).toBe(403);
    expect(await wrong.json()).toMatchObject({ error: "invalid_grant" });

    const noPkce = await fetch(
      `${atlassian.url}/authorize?${new URLSearchParams({ audience: "api.atlassian.com", client_id: clientId, scope: "read:jira-user", redirect_uri: redirectUri, response_type: "code", state: "x" })}`,
      { redirect: "manual" },
    );
    expect(location(noPkce).searchParams.get("error")).toBe("invalid_request");

    const pair = pkce();
    const good = await consent(pair.challenge);
    const body = { grant_type: "authorization_code", code: good, redirect_uri: redirectUri, code_verifier: pair.verifier };
    expect((await tokenRequest(body)).status).toBe(200);
    expect((await tokenRequest(body)).status).toBe(403);
    expect((await fetch(`${atlassian.url}/oauth/token`, json({ ...body, client_id: clientId, client_secret: "wrong" }))).status).toBe(401);
  });

  it("rotates refresh tokens: the new pair works, a spent refresh token is refused and counted, and that reuse revokes the grant", async () => {
    const first = await exchange();
    expect(first).toMatchObject({ token_type: "Bearer", expires_in: 3600, scope: "read:jira-user read:jira-work offline_access" });
    const resources = await (
      await fetch(`${atlassian.url}/oauth/token/accessible-resources`, { headers: { authorization: `Bearer ${first.access_token}` } })
    ).json();
    expect(resources).toEqual([
      { id: cloudId, url: "https://acme.atlassian.net", name: "acme", scopes: ["read:jira-user", "read:jira-work"], avatarUrl: expect.any(String) },
    ]);

    const reuseBefore = atlassian.refreshTokenReuseCount;
    const second = await (await refresh(first.refresh_token)).json();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect((await myself(second.access_token)).status).toBe(200);
    expect((await myself(first.access_token)).status).toBe(401); // companion of the spent refresh token (leeway 0)

    const reuse = await refresh(first.refresh_token);
    expect(reuse.status).toBe(403);
    expect(await reuse.json()).toEqual({ error: "invalid_grant", error_description: "Unknown or invalid refresh token." });
    expect(atlassian.refreshTokenReuseCount).toBe(reuseBefore + 1);
    // Reuse outside the leeway invalidates the whole grant, as Atlassian does.
    expect((await refresh(second.refresh_token)).status).toBe(403);
    expect(atlassian.isAccessTokenValid(second.access_token)).toBe(false);
  });

  it("keeps a refresh token usable after a transient failure, honours the leeway when set, and refuses expired tokens", async () => {
    const first = await exchange();
    atlassian.failNextRefresh({ status: 503 });
    expect((await refresh(first.refresh_token)).status).toBe(503);
    const second = await (await refresh(first.refresh_token)).json();
    expect(second.access_token).toEqual(expect.any(String));

    atlassian.refreshTokenLeewaySeconds = 600;
    try {
      const third = await refresh(second.refresh_token);
      expect(third.status).toBe(200);
      const retried = await refresh(second.refresh_token); // inside Atlassian's 10-minute leeway
      expect(retried.status).toBe(200);
    } finally {
      atlassian.refreshTokenLeewaySeconds = 0;
    }

    const fresh = await exchange();
    atlassian.expireAccessTokens();
    expect((await myself(fresh.access_token)).status).toBe(401);
    expect(await (await myself(fresh.access_token)).json()).toEqual({ code: 401, message: "Unauthorized" });
    atlassian.revokeGrant(fresh.refresh_token);
    expect((await refresh(fresh.refresh_token)).status).toBe(403);
  });

  it("issues no refresh token without offline_access", async () => {
    const { verifier, challenge } = pkce();
    const code = await consent(challenge, "read:jira-user");
    const body = await (await tokenRequest({ grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier })).json();
    expect(body.refresh_token).toBeUndefined();
    expect(body.access_token).toEqual(expect.any(String));
  });
});

describe("fake GitHub: user authorization, repositories and permissions", () => {
  const callback = "http://127.0.0.1:9/oauth/github/callback";
  let github: FakeGitHub;
  let app: FakeGitHubApp;
  let key: KeyObject;
  let upstreamInstallationId: number;

  const pkce = () => {
    const verifier = randomBytes(32).toString("base64url");
    return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
  };
  const authorize = async (params: Record<string, string> = {}) => {
    const query = new URLSearchParams({ client_id: app.clientId, redirect_uri: callback, state: "st-1", ...params });
    const res = await fetch(`${github.url}/login/oauth/authorize?${query}`, { redirect: "manual" });
    expect(res.status).toBe(302);
    return location(res);
  };
  const tokenRequest = (fields: Record<string, string>) =>
    fetch(
      `${github.url}/login/oauth/access_token`,
      json({ client_id: app.clientId, client_secret: app.clientSecret, ...fields }, { accept: "application/json" }),
    ).then((r) => r.json());
  const signIn = async (login: string) => {
    github.signInAs(login);
    const { verifier, challenge } = pkce();
    const code = (await authorize({ code_challenge: challenge, code_challenge_method: "S256" })).searchParams.get("code")!;
    const token = await tokenRequest({ code, code_verifier: verifier, redirect_uri: callback });
    expect(token.access_token).toMatch(/^ghu_/);
    return token as { access_token: string; refresh_token: string };
  };
  const api = (token: string | undefined, path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${github.url}${path}`, {
      method: init.method ?? "GET",
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
  const revoke = (what: "grant" | "token", accessToken: string, secret = app.clientSecret) =>
    fetch(`${github.url}/applications/${app.clientId}/${what}`, {
      method: "DELETE",
      headers: { "content-type": "application/json", authorization: `Basic ${Buffer.from(`${app.clientId}:${secret}`).toString("base64")}` },
      body: JSON.stringify({ access_token: accessToken }),
    });
  const installationToken = async (installationId: number, body: unknown = {}) => {
    const now = Math.floor(github.now() / 1000);
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256" })
      .setIssuer(app.clientId)
      .setIssuedAt(now - 60)
      .setExpirationTime(now + 540)
      .sign(key);
    const res = await fetch(`${github.url}/app/installations/${installationId}/access_tokens`, json(body, { authorization: `Bearer ${jwt}` }));
    expect(res.status).toBe(201);
    return (await res.json()).token as string;
  };
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

  beforeAll(async () => {
    github = await startFakeGitHub();
    app = await github.createApp({ slug: "keyplane-agent", callbackUrls: [callback] });
    key = createPrivateKey(app.privateKeyPem);
    github.createRepository({ owner: "upstream-org", name: "widgets", files: { "README.md": "# widgets\n", "src/index.ts": "export {};\n" } });
    github.createRepository({ owner: "upstream-org", name: "secret", private: true });
    github.createRepository({ owner: "elsewhere", name: "vault", private: true });
    upstreamInstallationId = github.addInstallation({
      appId: app.appId,
      account: { login: "upstream-org", type: "Organization" },
      repositories: ["widgets", "secret"],
      permissions: { metadata: "read", contents: "read", pull_requests: "write" },
    }).id;
    // The agent's own account: the app may create forks there and push to them.
    github.addInstallation({
      appId: app.appId,
      account: { login: "kp-agent", type: "User" },
      repositories: [],
      permissions: { metadata: "read", contents: "write", administration: "write", pull_requests: "write" },
    });
  });
  afterAll(() => github.close());

  it("authorizes with PKCE S256: the right verifier works once, a wrong or missing one is refused without spending the code", async () => {
    github.signInAs("kp-agent");
    const { verifier, challenge } = pkce();
    const target = await authorize({ code_challenge: challenge, code_challenge_method: "S256" });
    expect(`${target.origin}${target.pathname}`).toBe(callback);
    expect(target.searchParams.get("state")).toBe("st-1");
    const code = target.searchParams.get("code")!;
    expect((await tokenRequest({ code, code_verifier: pkce().verifier })).error).toBe("bad_verification_code");
    expect((await tokenRequest({ code })).error).toBe("bad_verification_code");
    const token = await tokenRequest({ code, code_verifier: verifier });
    expect(token).toMatchObject({ access_token: expect.stringMatching(/^ghu_/), refresh_token: expect.stringMatching(/^ghr_/), expires_in: 28800 });
    expect((await tokenRequest({ code, code_verifier: verifier })).error).toBe("bad_verification_code");
    const user = await (await api(token.access_token, "/user")).json();
    expect(user.login).toBe("kp-agent");

    expect((await fetch(`${github.url}/login/oauth/authorize?client_id=nope&state=x`, { redirect: "manual" })).status).toBe(404);
    const mismatch = await authorize({ redirect_uri: "http://127.0.0.1:9/elsewhere" });
    expect(`${mismatch.origin}${mismatch.pathname}`).toBe(callback);
    expect(mismatch.searchParams.get("error")).toBe("redirect_uri_mismatch");
    expect((await authorize({ code_challenge: challenge, code_challenge_method: "plain" })).searchParams.get("error")).toBe("invalid_request");
  });

  it("redirects with access_denied and the state when the user denies", async () => {
    github.denyNextAuthorization();
    const denied = await authorize({ state: "st-deny" });
    expect(denied.searchParams.get("error")).toBe("access_denied");
    expect(denied.searchParams.get("error_description")).toEqual(expect.any(String));
    expect(denied.searchParams.get("state")).toBe("st-deny");
    expect(denied.searchParams.get("code")).toBeNull();
    expect((await authorize()).searchParams.get("code")).toEqual(expect.any(String));
  });

  it("refuses a reused refresh token, and revoking the grant kills every token and refresh token of the user", async () => {
    const first = await signIn("grant-user");
    const refreshed = await tokenRequest({ grant_type: "refresh_token", refresh_token: first.refresh_token });
    expect(refreshed.access_token).toMatch(/^ghu_/);
    expect(github.isRefreshTokenSpent(first.refresh_token)).toBe(true);
    expect((await tokenRequest({ grant_type: "refresh_token", refresh_token: first.refresh_token })).error).toBe("bad_refresh_token");
    const other = await signIn("grant-user");
    expect(github.userTokenCount("grant-user")).toBe(3);

    expect((await revoke("grant", refreshed.access_token, "wrong-secret")).status).toBe(404);
    expect((await revoke("grant", "ghu_unknown")).status).toBe(404);
    expect((await revoke("grant", refreshed.access_token)).status).toBe(204);
    expect(github.userTokenCount("grant-user")).toBe(0);
    for (const token of [first.access_token, refreshed.access_token, other.access_token]) {
      const res = await api(token, "/user");
      expect(res.status).toBe(401);
      expect((await res.json()).message).toBe("Bad credentials");
    }
    expect(github.isRefreshTokenValid(other.refresh_token)).toBe(false);
    expect((await tokenRequest({ grant_type: "refresh_token", refresh_token: other.refresh_token })).error).toBe("bad_refresh_token");
    expect((await revoke("grant", other.access_token)).status).toBe(404);

    // DELETE .../token revokes only that token.
    const a = await signIn("token-user");
    const b = await signIn("token-user");
    expect((await revoke("token", a.access_token)).status).toBe(204);
    expect(github.isUserTokenValid(a.access_token)).toBe(false);
    expect(github.isUserTokenValid(b.access_token)).toBe(true);
    expect(github.isRefreshTokenValid(a.refresh_token)).toBe(true);
  });

  it("expires user tokens on demand and by its own clock; the refresh token still works", async () => {
    const token = await signIn("clock-user");
    github.setClockOffset(8 * 3600 * 1000 + 1000);
    try {
      expect((await api(token.access_token, "/user")).status).toBe(401);
    } finally {
      github.setClockOffset(0);
    }
    expect((await api(token.access_token, "/user")).status).toBe(200);
    github.expireUserTokens("clock-user");
    expect((await api(token.access_token, "/user")).status).toBe(401);
    const fresh = await tokenRequest({ grant_type: "refresh_token", refresh_token: token.refresh_token });
    expect((await api(fresh.access_token, "/user")).status).toBe(200);
  });

  it("forks as the user into the user's account, commits on a branch of the fork, and opens a PR upstream (then 422 duplicate and no commits)", async () => {
    const { access_token: token } = await signIn("kp-agent");
    const upstream = await (await api(token, "/repos/upstream-org/widgets")).json();
    expect(upstream).toMatchObject({ full_name: "upstream-org/widgets", fork: false, private: false, permissions: { pull: true, push: false } });

    const forkRes = await api(token, "/repos/upstream-org/widgets/forks", { method: "POST", body: {} });
    expect(forkRes.status).toBe(202);
    const fork = await forkRes.json();
    expect(fork).toMatchObject({
      full_name: "kp-agent/widgets",
      owner: { login: "kp-agent" },
      fork: true,
      parent: { full_name: "upstream-org/widgets" },
      source: { full_name: "upstream-org/widgets" },
      permissions: { push: true },
    });
    const again = await api(token, "/repos/upstream-org/widgets/forks", { method: "POST" });
    expect(again.status).toBe(202);
    expect((await again.json()).id).toBe(fork.id);
    expect(github.repository("upstream-org/widgets")?.forks).toEqual(["kp-agent/widgets"]);
    expect(github.repository("kp-agent/widgets")).toMatchObject({ createdBy: "kp-agent", fork: true, parent: "upstream-org/widgets" });

    // A branch on the fork.
    const main = await (await api(token, "/repos/kp-agent/widgets/git/ref/heads/main")).json();
    expect(main).toMatchObject({ ref: "refs/heads/main", object: { type: "commit", sha: expect.stringMatching(/^[0-9a-f]{40}$/) } });
    expect((await api(token, "/repos/kp-agent/widgets/git/ref/heads/nope")).status).toBe(404);
    const refBody = { ref: "refs/heads/fix-typo", sha: main.object.sha };
    expect((await api(token, "/repos/kp-agent/widgets/git/refs", { method: "POST", body: refBody })).status).toBe(201);
    const dupRef = await api(token, "/repos/kp-agent/widgets/git/refs", { method: "POST", body: refBody });
    expect(dupRef.status).toBe(422);
    expect((await dupRef.json()).message).toBe("Reference already exists");
    await api(token, "/repos/kp-agent/widgets/git/refs", { method: "POST", body: { ref: "refs/heads/empty", sha: main.object.sha } });

    // Contents: read, then update with and without the blob sha.
    const readme = await (await api(token, "/repos/kp-agent/widgets/contents/README.md?ref=fix-typo")).json();
    expect(readme).toMatchObject({ type: "file", encoding: "base64", path: "README.md", name: "README.md" });
    expect(Buffer.from(readme.content, "base64").toString("utf8")).toBe("# widgets\n");
    const put = (body: Record<string, unknown>) => api(token, "/repos/kp-agent/widgets/contents/README.md", { method: "PUT", body });
    const noSha = await put({ message: "Fix", content: b64("# Widgets\n"), branch: "fix-typo" });
    expect(noSha.status).toBe(422);
    expect((await noSha.json()).message).toContain(`"sha" wasn't supplied`);
    expect((await put({ message: "Fix", content: b64("# Widgets\n"), branch: "fix-typo", sha: "0".repeat(40) })).status).toBe(409);
    expect((await put({ message: "Fix", content: "not base64!", branch: "fix-typo", sha: readme.sha })).status).toBe(422);
    expect((await put({ message: "Fix", content: b64("x"), branch: "missing-branch", sha: readme.sha })).status).toBe(404);
    const updated = await put({ message: "Fix the title", content: b64("# Widgets\n"), branch: "fix-typo", sha: readme.sha });
    expect(updated.status).toBe(200);
    const commit = (await updated.json()).commit;
    expect(commit).toMatchObject({ message: "Fix the title", parents: [{ sha: main.object.sha }] });
    const created = await api(token, "/repos/kp-agent/widgets/contents/docs/NOTES.md", {
      method: "PUT",
      body: { message: "Notes", content: b64("notes\n"), branch: "fix-typo" },
    });
    expect(created.status).toBe(201);
    const fixTypo = github.repository("kp-agent/widgets")!.branches["fix-typo"]!;
    expect(fixTypo).toMatchObject({ author: "kp-agent", files: { "README.md": "# Widgets\n", "docs/NOTES.md": "notes\n", "src/index.ts": "export {};\n" } });
    expect(github.repository("kp-agent/widgets")!.branches.main!.files["README.md"]).toBe("# widgets\n");
    expect(github.repository("upstream-org/widgets")!.branches["fix-typo"]).toBeUndefined();

    // The pull request on upstream, from the fork's branch.
    const pr = { title: "Fix the title", head: "kp-agent:fix-typo", base: "main", body: "Small fix." };
    const opened = await api(token, "/repos/upstream-org/widgets/pulls", { method: "POST", body: pr });
    expect(opened.status).toBe(201);
    const pull = await opened.json();
    expect(pull).toMatchObject({
      number: 1,
      state: "open",
      title: "Fix the title",
      body: "Small fix.",
      user: { login: "kp-agent" },
      html_url: `${github.url}/upstream-org/widgets/pull/1`,
      head: { ref: "fix-typo", sha: fixTypo.sha, repo: { full_name: "kp-agent/widgets" } },
      base: { ref: "main", sha: main.object.sha, repo: { full_name: "upstream-org/widgets" } },
    });
    expect((await (await api(token, "/repos/upstream-org/widgets/pulls/1")).json()).number).toBe(1);
    expect(github.repository("upstream-org/widgets")!.pulls).toMatchObject([{ number: 1, user: "kp-agent", headRepo: "kp-agent/widgets" }]);

    const duplicate = await api(token, "/repos/upstream-org/widgets/pulls", { method: "POST", body: pr });
    expect(duplicate.status).toBe(422);
    expect(await duplicate.json()).toMatchObject({
      message: "Validation Failed",
      errors: [{ resource: "PullRequest", code: "custom", message: "A pull request already exists for kp-agent:fix-typo." }],
    });
    const empty = await api(token, "/repos/upstream-org/widgets/pulls", { method: "POST", body: { ...pr, head: "kp-agent:empty" } });
    expect(empty.status).toBe(422);
    expect((await empty.json()).errors).toEqual([{ resource: "PullRequest", code: "custom", message: "No commits between main and kp-agent:empty" }]);
    const noBranch = await api(token, "/repos/upstream-org/widgets/pulls", { method: "POST", body: { ...pr, head: "kp-agent:nope" } });
    expect(noBranch.status).toBe(422);
    expect((await noBranch.json()).errors).toEqual([{ resource: "PullRequest", field: "head", code: "invalid" }]);

    // Upstream is not writable: the app has only contents: read there (403, checked before the user's own access).
    expect((await api(token, "/repos/upstream-org/widgets/contents/README.md", { method: "PUT", body: { message: "x", content: b64("x") } })).status).toBe(403);
  });

  it("holds installation tokens to their repositories and permissions; objects they create belong to <slug>[bot]", async () => {
    const token = await installationToken(upstreamInstallationId);
    const put = await api(token, "/repos/upstream-org/widgets/contents/NEW.md", { method: "PUT", body: { message: "x", content: b64("x") } });
    expect(put.status).toBe(403);
    expect(await put.json()).toMatchObject({ message: "Resource not accessible by integration", documentation_url: expect.any(String) });
    expect((await api(token, "/repos/upstream-org/secret")).status).toBe(200);
    const outside = await api(token, "/repos/elsewhere/vault");
    expect(outside.status).toBe(404);
    expect((await outside.json()).message).toBe("Not Found");
    // Narrowed to widgets: the private repository of the same installation is gone.
    const narrowed = await installationToken(upstreamInstallationId, { repositories: ["widgets"] });
    expect((await api(narrowed, "/repos/upstream-org/secret")).status).toBe(404);

    github.createRepository({ owner: "upstream-org", name: "gadgets", files: { "a.txt": "a\n" } });
    const writer = github.addInstallation({
      appId: app.appId,
      account: { login: "bot-org", type: "Organization" },
      repositories: ["tools"],
      permissions: { metadata: "read", contents: "write", pull_requests: "write" },
    });
    github.createRepository({ owner: "bot-org", name: "tools", files: { "tool.sh": "echo\n" } });
    const writerToken = await installationToken(writer.id);
    expect((await api(writerToken, "/repos/bot-org/tools/git/refs", { method: "POST", body: { ref: "refs/heads/b", sha: "f".repeat(40) } })).status).toBe(422);
    const head = github.repository("bot-org/tools")!.branches.main!.sha;
    expect((await api(writerToken, "/repos/bot-org/tools/git/refs", { method: "POST", body: { ref: "refs/heads/b", sha: head } })).status).toBe(201);
    const put2 = await api(writerToken, "/repos/bot-org/tools/contents/tool.sh", {
      method: "PUT",
      body: { message: "Bot edit", content: b64("echo hi\n"), branch: "b" },
    });
    expect(put2.status).toBe(422); // an existing file needs its sha
    const blobSha = (await (await api(writerToken, "/repos/bot-org/tools/contents/tool.sh?ref=b")).json()).sha;
    expect(
      (
        await api(writerToken, "/repos/bot-org/tools/contents/tool.sh", {
          method: "PUT",
          body: { message: "Bot edit", content: b64("echo hi\n"), branch: "b", sha: blobSha },
        })
      ).status,
    ).toBe(200);
    const pr = await api(writerToken, "/repos/bot-org/tools/pulls", { method: "POST", body: { title: "Bot PR", head: "b", base: "main" } });
    expect(pr.status).toBe(201);
    expect((await pr.json()).user).toMatchObject({ login: "keyplane-agent[bot]", type: "Bot" });
    expect(github.repository("bot-org/tools")!.branches.b!.author).toBe("keyplane-agent[bot]");
    // A public repository outside the installation can be read, not written.
    expect((await api(writerToken, "/repos/upstream-org/gadgets/contents/a.txt")).status).toBe(200);
    expect((await api(writerToken, "/repos/upstream-org/gadgets/pulls", { method: "POST", body: { title: "x", head: "main", base: "main" } })).status).toBe(
      403,
    );
    // Forking into a user account is not for installation tokens; into its own organization it needs administration: write.
    expect((await api(writerToken, "/repos/upstream-org/gadgets/forks", { method: "POST" })).status).toBe(403);
    expect((await api(writerToken, "/repos/upstream-org/gadgets/forks", { method: "POST", body: { organization: "bot-org" } })).status).toBe(403);
  });

  it("gives a user-to-server token only what both the user and the app may do", async () => {
    const { access_token: stranger } = await signIn("stranger");
    const hidden = await api(stranger, "/repos/upstream-org/secret");
    expect(hidden.status).toBe(404);
    expect((await api(stranger, "/repos/upstream-org/secret/contents/README.md")).status).toBe(404);
    // Public: readable by anyone, even without a token.
    expect((await api(undefined, "/repos/upstream-org/widgets/contents/README.md")).status).toBe(200);
    expect((await api(undefined, "/repos/upstream-org/secret")).status).toBe(404);

    github.grantRepositoryAccess("stranger", "upstream-org/secret", "read");
    const granted = await api(stranger, "/repos/upstream-org/secret");
    expect(granted.status).toBe(200);
    expect((await granted.json()).permissions).toMatchObject({ pull: true, push: false, admin: false });
    // No installation on the stranger's account: no fork there.
    const fork = await api(stranger, "/repos/upstream-org/widgets/forks", { method: "POST" });
    expect(fork.status).toBe(403);
    expect((await fork.json()).message).toBe("Resource not accessible by integration");
    // A private repository of an account without the app is 404 even with the user's access.
    github.grantRepositoryAccess("stranger", "elsewhere/vault", "admin");
    expect((await api(stranger, "/repos/elsewhere/vault")).status).toBe(404);
    // Reading a granted private repository needs the app's contents: read there (upstream-org has it).
    expect((await api(stranger, "/repos/upstream-org/secret/contents/README.md")).status).toBe(200);
    // The app may write to kp-agent's repositories, but the stranger may not (404, as GitHub hides what one cannot push to).
    github.createRepository({ owner: "kp-agent", name: "notes", files: { "n.md": "n\n" } });
    const agentInstallation = github.installations.find((i) => i.account.login === "kp-agent")!;
    github.installationRepositoriesEvent(agentInstallation.id, { added: ["notes"] });
    const write = { method: "PUT", body: { message: "x", content: b64("x\n") } };
    expect((await api(stranger, "/repos/kp-agent/notes/contents/new.md", write)).status).toBe(404);
    github.grantRepositoryAccess("stranger", "kp-agent/notes", "write");
    expect((await api(stranger, "/repos/kp-agent/notes/contents/new.md", write)).status).toBe(201);
    expect(github.repository("kp-agent/notes")!.branches.main).toMatchObject({ author: "stranger", files: { "new.md": "x\n" } });
  });
});
