import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rebuildProjections } from "../../src/app/rebuildProjections.ts";
import { PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { withPlatform } from "../../src/store/db.ts";
import { browseInstall, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { testClock } from "../testkit/testClock.ts";

// The install flow as a tenant's people and services live it: real HTTP redirects between Keyplane
// and the local GitHub, Slack and Atlassian fakes, then the installation through GraphQL.

let world: ProviderWorld;
let app: TestApp;

beforeAll(async () => {
  world = await startProviderWorld();
  app = await createTestApp({ env: world.env, name: "installations" });
});
afterAll(async () => {
  await app?.close();
  await world?.close();
});

const INSTALLATION = `query ($id: ID!) { installation(id: $id) {
  id platform status externalId account { id login type url } permissions scopes repositorySelection
  credentialFingerprint credentialsExpiresAt suspendedByTenant suspendedByProvider createdBy version revokedAt
  refresh { failures lastError nextAttemptAt lastRefreshedAt } } }`;
const CREDENTIALS = "query ($id: ID!) { installationCredentials(id: $id) { installationId platform externalId accessToken expiresAt } }";

async function install(tenant: SeededTenant, platform: string): Promise<string> {
  const result = await browseInstall(app, platform, tenant.tokens.editor);
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  expect(result.body.outcome).toBe("created");
  return result.body.installation.id;
}

async function credentials(tenant: SeededTenant, id: string) {
  const res = await app.gql(CREDENTIALS, { id }, { token: tenant.tokens.service });
  if (res.data?.installationCredentials) registerSecret(res.data.installationCredentials.accessToken);
  return res;
}

async function auditTypes(tenant: SeededTenant, types: string[]) {
  const res = await app.gql(
    "query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { edges { node { type streamId data metadata } } } }",
    { types },
    { token: tenant.tokens.admin },
  );
  expect(res.errors).toBeUndefined();
  return res.data.auditLog.edges.map((e: any) => e.node);
}

/** Rows every table holds right now, as counts: "nothing stored" means none of these moved. */
async function tableCounts(): Promise<Record<string, number>> {
  return withPlatform(app.kp.deps.db, async (trx) => {
    const counts: Record<string, number> = {};
    for (const table of ["installations", "installation_secrets", "events"] as const) {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(trx);
      counts[table] = Number(rows[0]!.n);
    }
    return counts;
  });
}

async function securityEventsOf(requestId: string) {
  return withPlatform(app.kp.deps.db, (trx) =>
    trx.selectFrom("events").select(["tenant_id", "event_type", "data"]).where(sql<string>`metadata->>'requestId'`, "=", requestId).execute(),
  );
}

describe("installing through the browser flow", () => {
  it("Slack: authorize, exchange, team.info; the installation shows its workspace and no secret", async () => {
    const tenant = await app.seedTenant();
    world.slack.setNextTeam({ id: "T0ACME0001", name: "Acme", domain: "acme" });
    const result = await browseInstall(app, "slack", tenant.tokens.editor);
    expect(result.visited.map((u) => new URL(u).pathname)).toEqual(["/oauth/install/slack", "/oauth/v2/authorize", "/oauth/callback/slack"]);
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ outcome: "created", installation: { platform: "slack", status: "active", externalId: "T0ACME0001" } });

    const res = await app.gql(INSTALLATION, { id: result.body.installation.id }, { token: tenant.tokens.viewer });
    expect(res.errors).toBeUndefined();
    expect(res.data.installation).toMatchObject({
      platform: "slack",
      status: "active",
      account: { id: "T0ACME0001", login: "Acme", type: "team", url: "https://acme.slack.com" },
      scopes: expect.arrayContaining(["team:read", "chat:write"]),
      createdBy: `editor@${tenant.tenantId}`,
      suspendedByTenant: false,
    });
    expect(res.data.installation.credentialFingerprint).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(new Date(res.data.installation.credentialsExpiresAt).getTime()).toBeGreaterThan(Date.now());

    const events = await auditTypes(tenant, ["installation.requested", "installation.created"]);
    expect(events.map((e: any) => e.type)).toEqual(["installation.requested", "installation.created"]);
    expect(events[1].data.requestId).toBe(events[0].data.requestId);
    expect(events[1].metadata.actor.subject).toBe(`editor@${tenant.tenantId}`);
    expect(events[1].data.credentials).toMatchObject({ fingerprint: res.data.installation.credentialFingerprint, keyId: "k1" });
  });

  it("Jira: PKCE S256 with offline_access, the site from accessible-resources", async () => {
    const tenant = await app.seedTenant();
    const site = { id: randomUUID(), name: "acme-jira", url: "https://acme-jira.atlassian.net" };
    world.atlassian.setNextSites([site]);
    const result = await browseInstall(app, "jira", tenant.tokens.admin);
    const authorize = new URL(result.visited[1]!);
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorize.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.get("scope")!.split(" ")).toContain("offline_access");
    expect(result.status).toBe(200);
    const res = await app.gql(INSTALLATION, { id: result.body.installation.id }, { token: tenant.tokens.viewer });
    expect(res.data.installation).toMatchObject({
      platform: "jira",
      status: "active",
      externalId: site.id,
      account: { login: "acme-jira", type: "site", url: site.url },
    });
  });

  it("GitHub App: the install page, the setup callback with installation_id, the installation read with the app JWT", async () => {
    const tenant = await app.seedTenant();
    world.github.setNextInstall({
      account: { login: `org-${tenant.tenantId}`, type: "Organization" },
      repositories: ["api", "web"],
      permissions: { contents: "read", pull_requests: "write" },
    });
    const result = await browseInstall(app, "github", tenant.tokens.editor);
    expect(new URL(result.visited[1]!).pathname).toBe(`/apps/${world.githubApp.slug}/installations/new`);
    expect(result.status).toBe(200);
    const res = await app.gql(INSTALLATION, { id: result.body.installation.id }, { token: tenant.tokens.viewer });
    expect(res.data.installation).toMatchObject({
      platform: "github",
      status: "active",
      account: { login: `org-${tenant.tenantId}`, type: "Organization" },
      permissions: { contents: "read", pull_requests: "write" },
      repositorySelection: "selected",
      credentialFingerprint: null,
    });
  });

  it("startInstallation gives a single-page app the same authorization URL, and following it installs", async () => {
    const tenant = await app.seedTenant();
    const started = await app.gql(
      "mutation { startInstallation(platform: slack) { authorizationUrl requestId expiresAt } }",
      {},
      { token: tenant.tokens.editor },
    );
    expect(started.errors).toBeUndefined();
    const { authorizationUrl, expiresAt } = started.data.startInstallation;
    expect(new URL(authorizationUrl).origin).toBe(world.slack.url);
    expect(new Date(expiresAt).getTime() - Date.now()).toBeGreaterThan(9 * 60_000);
    const consent = await fetch(authorizationUrl, { redirect: "manual" });
    const callback = await fetch(consent.headers.get("location")!, { redirect: "manual" });
    expect(callback.status).toBe(200);
    expect(((await callback.json()) as any).outcome).toBe("created");
  });

  it("installing the same workspace again re-authorizes the installation instead of adding a second", async () => {
    const tenant = await app.seedTenant();
    world.slack.setNextTeam({ id: "T0SAME0001", name: "Same", domain: "same" });
    const first = await install(tenant, "slack");
    world.slack.setNextTeam({ id: "T0SAME0001", name: "Same", domain: "same" });
    const again = await browseInstall(app, "slack", tenant.tokens.editor);
    expect(again.body).toMatchObject({ outcome: "reauthorized", installation: { id: first } });
    const list = await app.gql("{ installations(first: 10) { nodes { id } } }", {}, { token: tenant.tokens.viewer });
    expect(list.data.installations.nodes).toEqual([{ id: first }]);
  });

  it("redirects to OAUTH_SUCCESS_URL when one is configured", async () => {
    const other = await startProviderWorld();
    const dashboard = await createTestApp({
      env: { ...other.env, OAUTH_SUCCESS_URL: "https://dashboard.example/installed?from=keyplane" },
      name: "installations-success",
    });
    try {
      const tenant = await dashboard.seedTenant();
      const result = await browseInstall(dashboard, "slack", tenant.tokens.editor, { stopAt: "https://dashboard.example/" });
      expect(result.status).toBe(302);
      const landed = new URL(result.location!);
      expect(landed.searchParams.get("from")).toBe("keyplane");
      expect(landed.searchParams.get("platform")).toBe("slack");
      expect(landed.searchParams.get("outcome")).toBe("created");
      expect(landed.searchParams.get("installation")).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await dashboard.close();
      await other.close();
    }
  });
});

describe("refusals on the install endpoints", () => {
  it("an unknown platform is 400 BAD_USER_INPUT, on both endpoints", async () => {
    const tenant = await app.seedTenant();
    const start = await fetch(`${app.url}/oauth/install/gitlab`, { redirect: "manual", headers: { authorization: `Bearer ${tenant.tokens.editor}` } });
    expect(start.status).toBe(400);
    expect(((await start.json()) as any).error).toMatchObject({ code: "BAD_USER_INPUT", field: "platform" });
    const back = await fetch(`${app.url}/oauth/callback/gitlab?state=x&code=y`, { redirect: "manual" });
    expect(back.status).toBe(400);
  });

  it("starting needs a signed-in editor or admin: no token 401, viewer and service 403", async () => {
    const tenant = await app.seedTenant();
    expect((await fetch(`${app.url}/oauth/install/slack`, { redirect: "manual" })).status).toBe(401);
    for (const role of ["viewer", "service"] as const) {
      const res = await fetch(`${app.url}/oauth/install/slack`, { redirect: "manual", headers: { authorization: `Bearer ${tenant.tokens[role]}` } });
      expect(res.status).toBe(403);
      expect(((await res.json()) as any).error.code).toBe("FORBIDDEN");
    }
    const res = await fetch(`${app.url}/oauth/install/slack`, { redirect: "manual", headers: { authorization: "Bearer not-a-token" } });
    expect(res.status).toBe(401);
  });

  async function callbackWith(query: string, requestId = `cb-${randomUUID()}`) {
    const res = await fetch(`${app.url}/oauth/callback/slack?${query}`, { redirect: "manual", headers: { "x-request-id": requestId } });
    return { status: res.status, body: (await res.json()) as any, requestId };
  }

  it("a missing or unknown state is 400 with nothing stored but a security event in the platform log", async () => {
    const before = await tableCounts();
    const missing = await callbackWith("code=abc");
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatchObject({ code: "BAD_USER_INPUT", field: "state" });
    const forged = await callbackWith(`code=abc&state=${"A".repeat(43)}`);
    expect(forged.status).toBe(400);
    const after = await tableCounts();
    expect(after.installations).toBe(before.installations);
    expect(after.installation_secrets).toBe(before.installation_secrets);
    for (const [probe, reason] of [
      [missing, "oauth-state-missing"],
      [forged, "oauth-state-unknown"],
    ] as const) {
      const events = await securityEventsOf(probe.requestId);
      expect(events.map((e) => [e.tenant_id, e.event_type, (e.data as any).reason])).toEqual([[PLATFORM_TENANT, "auth.failed", reason]]);
    }
  });

  it("a replayed state is 400: the first callback installed, the second stores nothing and is recorded in the tenant's log", async () => {
    const tenant = await app.seedTenant();
    const result = await browseInstall(app, "slack", tenant.tokens.editor);
    expect(result.status).toBe(200);
    const before = await tableCounts();
    const replay = await fetch(result.url, { redirect: "manual", headers: { "x-request-id": `replay-${randomUUID()}` } });
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as any).error.message).toMatch(/already used/);
    const after = await tableCounts();
    expect(after.installations).toBe(before.installations);
    expect(after.installation_secrets).toBe(before.installation_secrets);
    const events = await auditTypes(tenant, ["auth.failed"]);
    expect(events.map((e: any) => e.data.reason)).toEqual(["oauth-state-replayed"]);
  });

  it("a state issued for one platform does not complete another", async () => {
    const tenant = await app.seedTenant();
    const started = await fetch(`${app.url}/oauth/install/slack`, { redirect: "manual", headers: { authorization: `Bearer ${tenant.tokens.editor}` } });
    const state = new URL(started.headers.get("location")!).searchParams.get("state")!;
    const res = await fetch(`${app.url}/oauth/callback/jira?code=x&state=${state}`, { redirect: "manual" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.message).toMatch(/another platform/);
    const log = await auditTypes(tenant, ["auth.failed"]);
    expect(log.map((e: any) => e.data.reason)).toEqual(["oauth-state-platform-mismatch"]);
  });

  it("an expired state is 400 and recorded in the tenant's log", async () => {
    const other = await startProviderWorld();
    const clock = testClock();
    const shortLived = await createTestApp({ env: { ...other.env, OAUTH_STATE_TTL_SECONDS: "1" }, name: "installations-expiry", now: clock.now });
    try {
      const tenant = await shortLived.seedTenant();
      const started = await fetch(`${shortLived.url}/oauth/install/slack`, {
        redirect: "manual",
        headers: { authorization: `Bearer ${tenant.tokens.editor}` },
      });
      const consent = await fetch(started.headers.get("location")!, { redirect: "manual" });
      // Time itself is the subject: the state must be older than OAUTH_STATE_TTL_SECONDS (1 s) when the
      // callback arrives. Its only observer is the callback, which would complete the installation while
      // the state is still valid, so Keyplane's clock moves on past it first.
      clock.advance(1200);
      const late = await fetch(consent.headers.get("location")!, { redirect: "manual" });
      expect(late.status).toBe(400);
      expect(((await late.json()) as any).error.message).toMatch(/expired/);
      const list = await shortLived.gql("{ installations(first: 5) { nodes { id } } }", {}, { token: tenant.tokens.viewer });
      expect(list.data.installations.nodes).toEqual([]);
      const log = await shortLived.gql(
        '{ auditLog(first: 10, filter: { types: ["auth.failed"] }) { edges { node { data } } } }',
        {},
        { token: tenant.tokens.admin },
      );
      expect(log.data.auditLog.edges.map((e: any) => e.node.data.reason)).toEqual(["oauth-state-expired"]);
    } finally {
      await shortLived.close();
      await other.close();
    }
  });

  it("a provider error is 502 with the provider's code, and nothing is stored", async () => {
    const tenant = await app.seedTenant();
    const before = await tableCounts();
    world.slack.denyNext();
    const denied = await browseInstall(app, "slack", tenant.tokens.editor);
    expect(denied.status).toBe(502);
    expect(denied.body.error).toMatchObject({ code: "PROVIDER_ERROR", platform: "slack", providerCode: "access_denied" });

    world.slack.failNext("oauth.v2.access", { error: "invalid_code" });
    const refused = await browseInstall(app, "slack", tenant.tokens.editor);
    expect(refused.status).toBe(502);
    expect(refused.body.error.providerCode).toBe("invalid_code");

    world.atlassian.denyNext();
    const jira = await browseInstall(app, "jira", tenant.tokens.editor);
    expect(jira.status).toBe(502);
    expect(jira.body.error).toMatchObject({ platform: "jira", providerCode: "access_denied" });

    const after = await tableCounts();
    expect(after.installations).toBe(before.installations);
    expect(after.installation_secrets).toBe(before.installation_secrets);
    const list = await app.gql("{ installations(first: 5) { nodes { id } } }", {}, { token: tenant.tokens.viewer });
    expect(list.data.installations.nodes).toEqual([]);
  });

  it("a GitHub callback for an installation the user cannot see is refused (no claiming someone else's installation)", async () => {
    const tenant = await app.seedTenant();
    const victim = await world.github.addInstallation({
      appId: world.githubApp.appId,
      account: { login: `victim-${tenant.tenantId}`, type: "Organization" },
      repositories: ["secret"],
      permissions: { contents: "write" },
    });
    // The attacker starts a real install, then swaps the installation id in the setup redirect.
    const started = await fetch(`${app.url}/oauth/install/github`, { redirect: "manual", headers: { authorization: `Bearer ${tenant.tokens.editor}` } });
    const installed = await fetch(started.headers.get("location")!, { redirect: "manual" });
    const setup = new URL(installed.headers.get("location")!);
    setup.searchParams.set("installation_id", String(victim.id));
    const res = await fetch(setup, { redirect: "manual" });
    expect(res.status).toBe(502);
    expect(((await res.json()) as any).error.providerCode).toBe("installation_not_accessible");
    const list = await app.gql("{ installations(first: 5) { nodes { externalId } } }", {}, { token: tenant.tokens.viewer });
    expect(list.data.installations.nodes).toEqual([]);
  });
});

describe("installationCredentials", () => {
  it("gives a service a working Slack token and records credentials.read with its fingerprint only", async () => {
    const tenant = await app.seedTenant();
    const id = await install(tenant, "slack");
    const res = await credentials(tenant, id);
    expect(res.errors).toBeUndefined();
    const token: string = res.data.installationCredentials.accessToken;
    expect(res.data.installationCredentials).toMatchObject({ installationId: id, platform: "slack" });
    expect(world.slack.isAccessTokenValid(token)).toBe(true);
    const reads = await auditTypes(tenant, ["credentials.read"]);
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({
      streamId: id,
      data: { installationId: id, platform: "slack" },
      metadata: { actor: { subject: `service@${tenant.tenantId}`, kind: "service" } },
    });
    expect(JSON.stringify(reads)).not.toContain(token);
    const row = await app.gql(INSTALLATION, { id }, { token: tenant.tokens.viewer });
    expect(reads[0].data.fingerprint).toBe(row.data.installation.credentialFingerprint);
  });

  it("gives a service a GitHub installation token minted with the app's key, usable at GitHub", async () => {
    const tenant = await app.seedTenant();
    world.github.setNextInstall({
      account: { login: `gh-${tenant.tenantId}`, type: "Organization" },
      repositories: ["api"],
      permissions: { contents: "read" },
    });
    const id = await install(tenant, "github");
    const res = await credentials(tenant, id);
    expect(res.errors).toBeUndefined();
    const token: string = res.data.installationCredentials.accessToken;
    expect(token.startsWith("ghs_")).toBe(true);
    expect(token.length).toBeGreaterThan(40);
    const repos = await fetch(`${world.github.url}/installation/repositories`, { headers: { authorization: `token ${token}` } });
    expect(repos.status).toBe(200);
    expect(new Date(res.data.installationCredentials.expiresAt).getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);
  });

  it("refreshes Jira credentials that are near expiry before handing them out", async () => {
    const tenant = await app.seedTenant();
    world.atlassian.accessTokenTtlSeconds = 120; // inside the 10-minute refresh window
    try {
      const id = await install(tenant, "jira");
      const refreshesBefore = world.atlassian.refreshCount;
      const res = await credentials(tenant, id);
      expect(res.errors).toBeUndefined();
      expect(world.atlassian.refreshCount).toBe(refreshesBefore + 1);
      expect(world.atlassian.isAccessTokenValid(res.data.installationCredentials.accessToken)).toBe(true);
      const events = await auditTypes(tenant, ["installation.credentials_refreshed", "credentials.read"]);
      expect(events.map((e: any) => e.type)).toEqual(["installation.credentials_refreshed", "credentials.read"]);
    } finally {
      world.atlassian.accessTokenTtlSeconds = 3600;
    }
  });

  it("bad and foreign ids: BAD_USER_INPUT for a malformed id, NOT_FOUND for an unknown one", async () => {
    const tenant = await app.seedTenant();
    const malformed = await app.gql(CREDENTIALS, { id: "1; drop table installations" }, { token: tenant.tokens.service });
    expect(malformed.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT" });
    const unknown = await app.gql(CREDENTIALS, { id: randomUUID() }, { token: tenant.tokens.service });
    expect(unknown.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  });
});

describe("suspend, resume, revoke", () => {
  const mutate = (tenant: SeededTenant, name: string, id: string) =>
    app.gql(`mutation ($id: ID!) { ${name}(id: $id) { id status suspendedByTenant revokedAt } }`, { id }, { token: tenant.tokens.admin });

  it("a suspended installation hands out nothing until resumed", async () => {
    const tenant = await app.seedTenant();
    const id = await install(tenant, "slack");
    const suspended = await mutate(tenant, "suspendInstallation", id);
    expect(suspended.data.suspendInstallation).toMatchObject({ status: "suspended", suspendedByTenant: true });
    const refused = await credentials(tenant, id);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: "CONFLICT", status: "suspended" });
    const resumed = await mutate(tenant, "resumeInstallation", id);
    expect(resumed.data.resumeInstallation).toMatchObject({ status: "active", suspendedByTenant: false });
    expect((await credentials(tenant, id)).errors).toBeUndefined();
    const events = await auditTypes(tenant, ["installation.suspended", "installation.resumed"]);
    expect(events.map((e: any) => [e.type, e.data.by])).toEqual([
      ["installation.suspended", "tenant"],
      ["installation.resumed", "tenant"],
    ]);
  });

  it("revoking Slack calls auth.revoke: the token dies at Slack, the vault forgets it, the event says so", async () => {
    const tenant = await app.seedTenant();
    const id = await install(tenant, "slack");
    const token = (await credentials(tenant, id)).data.installationCredentials.accessToken;
    const revoked = await mutate(tenant, "revokeInstallation", id);
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data.revokeInstallation.status).toBe("revoked");
    expect(revoked.data.revokeInstallation.revokedAt).not.toBeNull();
    expect(world.slack.isAccessTokenValid(token)).toBe(false);
    const vault = await withPlatform(app.kp.deps.db, (trx) =>
      trx.selectFrom("installation_secrets").select("installation_id").where("installation_id", "=", id).execute(),
    );
    expect(vault).toEqual([]);
    expect((await credentials(tenant, id)).errors?.[0]?.extensions?.code).toBe("CONFLICT");
    const events = await auditTypes(tenant, ["installation.revoked"]);
    expect(events.map((e: any) => e.data)).toEqual([{ installationId: id, by: "tenant", providerRevoked: true }]);
    // Revoking again changes nothing and records nothing.
    expect((await mutate(tenant, "revokeInstallation", id)).data.revokeInstallation.status).toBe("revoked");
    expect(await auditTypes(tenant, ["installation.revoked"])).toHaveLength(1);
  });

  it("revoking GitHub uninstalls the app, so its installation tokens stop working", async () => {
    const tenant = await app.seedTenant();
    world.github.setNextInstall({ account: { login: `rv-${tenant.tenantId}`, type: "User" }, repositories: ["x"], permissions: { contents: "read" } });
    const id = await install(tenant, "github");
    const token = (await credentials(tenant, id)).data.installationCredentials.accessToken;
    const { externalId } = (await app.gql(INSTALLATION, { id }, { token: tenant.tokens.viewer })).data.installation;
    expect((await mutate(tenant, "revokeInstallation", id)).data.revokeInstallation.status).toBe("revoked");
    expect(world.github.getInstallation(Number(externalId))).toBeUndefined();
    expect((await fetch(`${world.github.url}/installation/repositories`, { headers: { authorization: `token ${token}` } })).status).toBe(401);
  });

  it("revoking Jira forgets the grant (Atlassian has no revocation endpoint) and records it", async () => {
    const tenant = await app.seedTenant();
    const id = await install(tenant, "jira");
    const calls = world.atlassian.requests.length;
    const revoked = await mutate(tenant, "revokeInstallation", id);
    expect(revoked.data.revokeInstallation.status).toBe("revoked");
    expect(world.atlassian.requests.length).toBe(calls);
    const events = await auditTypes(tenant, ["installation.revoked"]);
    expect(events[0].data).toMatchObject({ providerRevoked: false });
  });
});

describe("tenant isolation", () => {
  it("another tenant's tokens see nothing of an installation and change nothing", async () => {
    const owner = await app.seedTenant();
    const other = await app.seedTenant();
    const id = await install(owner, "slack");
    for (const role of ["viewer", "admin", "service"] as const) {
      const one = await app.gql(INSTALLATION, { id }, { token: other.tokens[role] });
      expect(one.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
      const list = await app.gql("{ installations(first: 10) { nodes { id } } }", {}, { token: other.tokens[role] });
      expect(list.data.installations.nodes).toEqual([]);
    }
    expect((await credentials(other, id)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    for (const name of ["suspendInstallation", "resumeInstallation", "revokeInstallation"]) {
      const res = await app.gql(`mutation ($id: ID!) { ${name}(id: $id) { id } }`, { id }, { token: other.tokens.admin });
      expect(res.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    }
    const still = await app.gql(INSTALLATION, { id }, { token: owner.tokens.viewer });
    expect(still.data.installation).toMatchObject({ status: "active", version: 1 });
    expect((await credentials(owner, id)).errors).toBeUndefined();
  });

  it("a GitHub installation connected to one tenant cannot be claimed by another (409 and a critical event)", async () => {
    const owner = await app.seedTenant();
    const thief = await app.seedTenant();
    const login = `shared-${owner.tenantId}`;
    world.github.setNextInstall({ account: { login, type: "User" }, repositories: ["r"], permissions: { contents: "read" } });
    await install(owner, "github");
    // The same GitHub user installs again from another Keyplane tenant: GitHub answers with the same installation.
    world.github.setNextInstall({ account: { login, type: "User" }, repositories: ["r"], permissions: { contents: "read" } });
    const stolen = await browseInstall(app, "github", thief.tokens.editor);
    expect(stolen.status).toBe(409);
    expect(stolen.body.error.code).toBe("CONFLICT");
    const list = await app.gql("{ installations(first: 5) { nodes { id } } }", {}, { token: thief.tokens.viewer });
    expect(list.data.installations.nodes).toEqual([]);
    const alarms = await auditTypes(thief, ["access.denied"]);
    expect(alarms.map((e: any) => [e.data.reason, e.data.level])).toEqual([["installation-claimed-by-another-tenant", "critical"]]);
  });
  it("a GitHub installation revoked by its tenant can then be connected to another; a projection rebuild keeps that owner, whichever tenant replays first", async () => {
    // Rebuilds replay tenant by tenant: here the new owner's tenant replays before the one that revoked.
    const [claimer, first] = [await app.seedTenant(), await app.seedTenant()].sort((a, b) => (a.tenantId < b.tenantId ? -1 : 1));
    const login = `moved-${first!.tenantId}`;
    world.github.setNextInstall({ account: { login, type: "User" }, repositories: ["r"], permissions: { contents: "read" } });
    const before = await install(first!, "github");
    // GitHub answers the uninstall with 404 (gone there already, as far as it says), so Keyplane
    // revokes its record while the installation lives on at GitHub, free for another tenant.
    const externalId = (await app.gql(INSTALLATION, { id: before }, { token: first!.tokens.viewer })).data.installation.externalId;
    world.github.failNext(`/app/installations/${externalId}`, { status: 404, body: { message: "Not Found" } });
    const revoked = await app.gql("mutation ($id: ID!) { revokeInstallation(id: $id) { status externalId } }", { id: before }, { token: first!.tokens.admin });
    expect(revoked.data.revokeInstallation.status).toBe("revoked");
    world.github.setNextInstall({ account: { login, type: "User" }, repositories: ["r"], permissions: { contents: "read" } });
    const after = await install(claimer!, "github");
    const moved = await app.gql(INSTALLATION, { id: after }, { token: claimer!.tokens.viewer });
    expect(moved.data.installation.externalId).toBe(revoked.data.revokeInstallation.externalId);
    const owners = () =>
      withPlatform(app.kp.deps.db, (trx) =>
        trx.selectFrom("github_installation_owners").selectAll().where("external_id", "=", moved.data.installation.externalId).execute(),
      );
    expect(await owners()).toEqual([{ external_id: moved.data.installation.externalId, tenant_id: claimer!.tenantId, installation_id: after }]);

    await rebuildProjections(app.kp.deps.db);
    expect(await owners()).toEqual([{ external_id: moved.data.installation.externalId, tenant_id: claimer!.tenantId, installation_id: after }]);
    // The rule holds after the rebuild: a third tenant is refused.
    const third = await app.seedTenant();
    world.github.setNextInstall({ account: { login, type: "User" }, repositories: ["r"], permissions: { contents: "read" } });
    expect((await browseInstall(app, "github", third.tokens.editor)).status).toBe(409);
  });
});
