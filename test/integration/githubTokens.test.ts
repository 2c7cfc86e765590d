import { randomBytes, randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withPlatform } from "../../src/store/db.ts";
import { freePort, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { enroll, seedInstallation } from "../testkit/fixtures.ts";

// GitHub App installation tokens as services, agents and admins obtain them: only for installations
// the tenant claimed, only as far as a token policy allows, cached, audited and revocable.

let world: ProviderWorld;
let app: TestApp;

beforeAll(async () => {
  world = await startProviderWorld();
  app = await createTestApp({ env: world.env, name: "github-tokens" });
});
afterAll(async () => {
  await app?.close();
  await world?.close();
});

const ISSUE = `mutation ($input: IssueGitHubTokenInput!) { issueGitHubToken(input: $input) {
  id token expiresAt installationId repositories permissions cached fingerprint policy } }`;
const SET_POLICY = "mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name app roles subjects repositories permissions version } }";
const REVOKE = "mutation ($id: ID!) { revokeGitHubToken(id: $id) { id revokedAt revokeReason fingerprint } }";

interface Org {
  tenant: SeededTenant;
  org: string;
  installationId: string;
  githubInstallationId: number;
}

/** A tenant that installed the rex app on a fresh org with repositories api, web-app, web-docs and infra. */
async function orgWithRex(): Promise<Org> {
  const tenant = await app.seedTenant();
  const org = `org-${randomBytes(4).toString("hex")}`;
  world.github.setNextInstall({
    account: { login: org, type: "Organization" },
    repositories: ["api", "web-app", "web-docs", "infra"],
    permissions: { contents: "write", pull_requests: "write", issues: "write", metadata: "read" },
  });
  const installed = await seedInstallation(app, tenant.tokens.editor, "github", { query: "app=rex" });
  return { tenant, org, installationId: installed.id, githubInstallationId: Number(installed.externalId) };
}

async function setPolicy(o: Org, policy: Record<string, unknown>) {
  const res = await app.gql(SET_POLICY, { input: { app: "rex", ...policy } }, { token: o.tenant.tokens.admin });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data.setTokenPolicy;
}

const servicePolicy = (o: Org) => ({
  name: "ci",
  roles: ["service", "admin"],
  repositories: [`${o.org}/api`, `${o.org}/web-*`],
  permissions: { contents: "read", pull_requests: "write" },
});

async function issue(token: string, input: Record<string, unknown>) {
  const res = await app.gql(ISSUE, { input: { app: "rex", ...input } }, { token });
  if (res.data?.issueGitHubToken) registerSecret(res.data.issueGitHubToken.token);
  return res;
}

const mintCalls = () => world.github.requests.filter((r) => r.method === "POST" && /^\/app\/installations\/\d+\/access_tokens$/.test(r.path)).length;

async function reposVisibleWith(token: string): Promise<{ status: number; names: string[] }> {
  const res = await fetch(`${world.github.url}/installation/repositories`, { headers: { authorization: `token ${token}` } });
  if (res.status !== 200) return { status: res.status, names: [] };
  const body = (await res.json()) as { repositories: Array<{ name: string }> };
  return { status: 200, names: body.repositories.map((r) => r.name).sort() };
}

async function log(o: Org, types: string[]) {
  const res = await app.gql(
    "query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { edges { node { type data metadata } } } }",
    { types },
    { token: o.tenant.tokens.admin },
  );
  expect(res.errors).toBeUndefined();
  return res.data.auditLog.edges.map((e: any) => e.node);
}

describe("token policies", () => {
  it("admins set, list, replace and delete policies; every change is an event, an unchanged set is none", async () => {
    const o = await orgWithRex();
    const set = await setPolicy(o, servicePolicy(o));
    expect(set).toMatchObject({ name: "ci", app: "rex", roles: ["service", "admin"], repositories: [`${o.org}/api`, `${o.org}/web-*`], version: 1 });
    await setPolicy(o, servicePolicy(o));
    const replaced = await setPolicy(o, { ...servicePolicy(o), permissions: { contents: "read" } });
    expect(replaced.version).toBe(2);
    const listed = await app.gql("{ tokenPolicies { name permissions } }", {}, { token: o.tenant.tokens.viewer });
    expect(listed.data.tokenPolicies).toEqual([{ name: "ci", permissions: { contents: "read" } }]);
    expect((await app.gql('mutation { deleteTokenPolicy(name: "ci") }', {}, { token: o.tenant.tokens.admin })).data.deleteTokenPolicy).toBe(true);
    const again = await app.gql('mutation { deleteTokenPolicy(name: "ci") }', {}, { token: o.tenant.tokens.admin });
    expect(again.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await log(o, ["token_policy.set", "token_policy.deleted"])).map((e: any) => e.type)).toEqual([
      "token_policy.set",
      "token_policy.set",
      "token_policy.deleted",
    ]);
  });

  it("refuses malformed policies with the field named, storing nothing", async () => {
    const o = await orgWithRex();
    for (const [policy, field] of [
      [{ ...servicePolicy(o), repositories: ["no-slash"] }, "repositories"],
      [{ ...servicePolicy(o), permissions: { contents: "owner" } }, "permissions"],
      [{ ...servicePolicy(o), roles: [] }, "roles"],
      [{ ...servicePolicy(o), app: "nosuchapp" }, "app"],
      [{ ...servicePolicy(o), name: "Bad Name" }, "name"],
    ] as const) {
      const res = await app.gql(SET_POLICY, { input: { app: "rex", ...policy } }, { token: o.tenant.tokens.admin });
      expect(res.errors?.[0]?.extensions, JSON.stringify(res.errors)).toMatchObject({ code: "BAD_USER_INPUT" });
      expect(String(res.errors?.[0]?.extensions?.field ?? res.errors?.[0]?.message)).toContain(field);
    }
    expect((await app.gql("{ tokenPolicies { name } }", {}, { token: o.tenant.tokens.admin })).data.tokenPolicies).toEqual([]);
  });
});

describe("issueGitHubToken", () => {
  it("gives a service a token narrowed to what it asked for, usable at GitHub, recorded by fingerprint only", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const res = await issue(o.tenant.tokens.service, { repository: `${o.org}/api`, permissions: { contents: "read" } });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    const issued = res.data.issueGitHubToken;
    expect(issued).toMatchObject({ installationId: o.githubInstallationId, permissions: { contents: "read" }, cached: false, policy: "ci" });
    expect(issued.repositories).toEqual([`${o.org}/api`]);
    expect(issued.token.length).toBeGreaterThan(40);
    expect(await reposVisibleWith(issued.token)).toEqual({ status: 200, names: ["api"] });

    const events = await log(o, ["token.issued"]);
    expect(events).toHaveLength(1);
    expect(events[0].data).toMatchObject({
      tokenId: issued.id,
      app: "rex",
      requester: `service@${o.tenant.tenantId}`,
      fingerprint: issued.fingerprint,
      cached: false,
      repositories: [`${o.org}/api`],
      permissions: { contents: "read" },
    });
    expect(JSON.stringify(events)).not.toContain(issued.token);
    const listed = await app.gql(
      "{ issuedTokens(first: 10) { nodes { id requester fingerprint cached repositories } } }",
      {},
      { token: o.tenant.tokens.admin },
    );
    expect(listed.data.issuedTokens.nodes).toEqual([
      { id: issued.id, requester: `service@${o.tenant.tenantId}`, fingerprint: issued.fingerprint, cached: false, repositories: [`${o.org}/api`] },
    ]);
  });

  it("without repositories or permissions, grants the policy's narrowest: its exact repositories and its permissions, never the whole installation", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const res = await issue(o.tenant.tokens.service, { owner: o.org });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect(res.data.issueGitHubToken.repositories).toEqual([`${o.org}/api`]);
    expect(res.data.issueGitHubToken.permissions).toEqual({ contents: "read", pull_requests: "write" });
    expect((await reposVisibleWith(res.data.issueGitHubToken.token)).names).toEqual(["api"]);
  });

  it("a prefix pattern allows the repositories it matches, by name or owner/name, and by installation id", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const res = await issue(o.tenant.tokens.service, { installationId: o.githubInstallationId, repositories: ["web-app", `${o.org}/web-docs`] });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect((await reposVisibleWith(res.data.issueGitHubToken.token)).names).toEqual(["web-app", "web-docs"]);
  });

  it("refuses what no policy allows: FORBIDDEN and an access.denied event naming why", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ repository: `${o.org}/infra` }, "token-policy:repository-not-allowed"],
      [{ repository: `${o.org}/api`, permissions: { contents: "write" } }, "token-policy:permission-not-allowed"],
      [{ repository: `${o.org}/api`, permissions: { issues: "read" } }, "token-policy:permission-not-allowed"],
    ];
    for (const [input] of cases) {
      const res = await issue(o.tenant.tokens.service, input);
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(res.errors)).toBe("FORBIDDEN");
      expect(res.data?.issueGitHubToken ?? null).toBeNull();
    }
    const denied = await log(o, ["access.denied"]);
    expect(denied.map((e: any) => e.data.reason)).toEqual(expect.arrayContaining(cases.map(([, reason]) => reason)));
    // A principal no policy names.
    const other = await app.mintToken({ tenantId: o.tenant.tenantId, roles: ["service"], subject: "not-named" });
    await setPolicy(o, { ...servicePolicy(o), roles: [], subjects: ["someone-else"] });
    expect((await issue(other, { repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    // Viewers and editors cannot ask at all.
    expect((await issue(o.tenant.tokens.viewer, { repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(mintCalls()).toBeGreaterThan(0); // sanity: the fake is counted (earlier tests minted)
  });

  it("answers NOT_FOUND for an owner or installation this tenant has not installed, and BAD_USER_INPUT for an unknown app or bad input", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    expect((await issue(o.tenant.tokens.service, { owner: "someone-elses-org" })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await issue(o.tenant.tokens.service, { installationId: 987654321 })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await issue(o.tenant.tokens.service, { app: "nosuchapp", owner: o.org })).errors?.[0]?.extensions).toMatchObject({
      code: "BAD_USER_INPUT",
      field: "app",
    });
    expect((await issue(o.tenant.tokens.service, { owner: o.org, repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    // Naming no installation: the tenant's only one of the app.
    const only = await issue(o.tenant.tokens.service, { repositories: ["api"] });
    expect(only.errors, JSON.stringify(only.errors)).toBeUndefined();
    expect(only.data.issueGitHubToken.installationId).toBe(o.githubInstallationId);
    expect((await issue(o.tenant.tokens.service, { repository: "not a repo" })).errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });

  it("a repository the installation lacks is BAD_USER_INPUT naming it (GitHub's 422)", async () => {
    const o = await orgWithRex();
    await setPolicy(o, { ...servicePolicy(o), repositories: [`${o.org}/*`] });
    const res = await issue(o.tenant.tokens.service, { repository: `${o.org}/ghost` });
    expect(res.errors?.[0]?.extensions?.code, JSON.stringify(res.errors)).toBe("BAD_USER_INPUT");
    expect(res.errors?.[0]?.message).toContain("ghost");
  });
});

describe("cache and single-flight", () => {
  it("reuses an identical token (audited, marked cached) and makes one upstream call", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const before = mintCalls();
    const first = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    const second = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    expect(mintCalls() - before).toBe(1);
    expect(second).toMatchObject({ cached: true, fingerprint: first.fingerprint, token: first.token });
    expect(second.id).not.toBe(first.id);
    const other = (await issue(o.tenant.tokens.service, { repository: `${o.org}/web-app` })).data.issueGitHubToken;
    expect(other.cached).toBe(false);
    const issued = await log(o, ["token.issued"]);
    expect(issued.map((e: any) => e.data.cached)).toEqual([false, true, false]);
  });

  it("a cached token costs 4 round trips: the facts it is decided on in one transaction, then the append with its projection on its own", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    await issue(o.tenant.tokens.service, { repository: `${o.org}/api` });
    const { result, roundTrips } = await app.roundTripsOf(() => issue(o.tenant.tokens.service, { repository: `${o.org}/api` }));
    expect(result.data.issueGitHubToken.cached).toBe(true);
    // BEGIN with the tenant scope, one read, the append, the projection, COMMIT: two transactions would need at least 6.
    expect(roundTrips).toBeLessThanOrEqual(4);
  });

  it("200 concurrent identical requests make exactly one call to GitHub", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const before = mintCalls();
    const results = await Promise.all(
      Array.from({ length: 200 }, () => issue(o.tenant.tokens.service, { repository: `${o.org}/web-docs`, permissions: { contents: "read" } })),
    );
    expect(results.filter((r) => r.errors).map((r) => r.errors)).toEqual([]);
    expect(mintCalls() - before).toBe(1);
    expect(new Set(results.map((r) => r.data.issueGitHubToken.fingerprint)).size).toBe(1);
    expect(results.filter((r) => !r.data.issueGitHubToken.cached)).toHaveLength(1);
    const recorded = await withPlatform(app.kp.deps.db, (trx) =>
      trx.selectFrom("github_tokens").select("cached").where("tenant_id", "=", o.tenant.tenantId).execute(),
    );
    expect(recorded).toHaveLength(200);
    expect(recorded.filter((r) => !r.cached)).toHaveLength(1);
  });
});

describe("revocation", () => {
  it("the requester revokes its own token: dead at GitHub, token.revoked for it and its cached reuses, the next request mints anew", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const first = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    const reuse = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    expect(reuse.cached).toBe(true);
    const revoked = await app.gql(REVOKE, { id: first.id }, { token: o.tenant.tokens.service });
    expect(revoked.errors, JSON.stringify(revoked.errors)).toBeUndefined();
    expect(revoked.data.revokeGitHubToken).toMatchObject({ id: first.id, revokeReason: "requested" });
    expect((await reposVisibleWith(first.token)).status).toBe(401);
    const events = await log(o, ["token.revoked"]);
    expect(events.map((e: any) => [e.data.tokenId, e.data.revokedAtGitHub]).sort()).toEqual(
      [
        [first.id, true],
        [reuse.id, true],
      ].sort(),
    );
    const fresh = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    expect(fresh.cached).toBe(false);
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
    expect((await reposVisibleWith(fresh.token)).status).toBe(200);
  });

  it("a token revoked through another process is never handed out again from this one's cache", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const first = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    const other = await createTestApp({ env: { ...world.env, PORT: String(await freePort()) }, database: app.database, name: "github-tokens-second-process" });
    try {
      const admin = await other.mintToken({ tenantId: o.tenant.tenantId, roles: ["admin"] });
      const revoked = await other.gql(REVOKE, { id: first.id }, { token: admin });
      expect(revoked.errors, JSON.stringify(revoked.errors)).toBeUndefined();
    } finally {
      await other.close();
    }
    // This process still holds the token in its cache, but the request's own read sees the revocation.
    const next = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    expect(next).toMatchObject({ cached: false });
    expect(next.fingerprint).not.toBe(first.fingerprint);
    expect((await reposVisibleWith(next.token)).status).toBe(200);
  });

  it("another service cannot revoke it; an admin can", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const issued = (await issue(o.tenant.tokens.service, { repository: `${o.org}/web-app` })).data.issueGitHubToken;
    const stranger = await app.mintToken({ tenantId: o.tenant.tenantId, roles: ["service"], subject: "stranger" });
    expect((await app.gql(REVOKE, { id: issued.id }, { token: stranger })).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect((await reposVisibleWith(issued.token)).status).toBe(200);
    expect((await app.gql(REVOKE, { id: issued.id }, { token: o.tenant.tokens.admin })).errors).toBeUndefined();
    expect((await reposVisibleWith(issued.token)).status).toBe(401);
  });

  it("revoking or suspending the installation revokes its outstanding tokens and empties the cache", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const issued = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    const suspended = await app.gql(
      "mutation ($id: ID!) { suspendInstallation(id: $id) { status } }",
      { id: o.installationId },
      { token: o.tenant.tokens.admin },
    );
    expect(suspended.data.suspendInstallation.status).toBe("suspended");
    expect((await reposVisibleWith(issued.token)).status).toBe(401);
    expect((await log(o, ["token.revoked"])).map((e: any) => e.data.reason)).toEqual(["installation_suspended"]);
    expect((await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("CONFLICT");

    await app.gql("mutation ($id: ID!) { resumeInstallation(id: $id) { status } }", { id: o.installationId }, { token: o.tenant.tokens.admin });
    const again = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    expect(again.cached).toBe(false);
    await app.gql("mutation ($id: ID!) { revokeInstallation(id: $id) { status } }", { id: o.installationId }, { token: o.tenant.tokens.admin });
    expect((await log(o, ["token.revoked"])).map((e: any) => e.data.reason)).toEqual(["installation_suspended", "installation_revoked"]);
    expect((await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  });

  it("a suspend webhook from GitHub revokes the outstanding tokens too", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const issued = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    const delivered = await world.github.deliverWebhook(`${app.url}/webhooks/github`, {
      event: "installation",
      payload: world.github.installationEvent(o.githubInstallationId, "suspend"),
      appId: world.rexApp.appId,
      secret: world.rexApp.webhookSecret,
    });
    expect(delivered.status).toBe(200);
    const records = await app.gql("{ issuedTokens(first: 5) { nodes { id revokeReason } } }", {}, { token: o.tenant.tokens.admin });
    expect(records.data.issuedTokens.nodes).toEqual([{ id: issued.id, revokeReason: "installation_suspended" }]);
  });
});

describe("tenant isolation", () => {
  it("another tenant cannot obtain, see or revoke this tenant's GitHub tokens", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    const issued = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    const other = await app.seedTenant();
    // Even with a policy of its own naming the org, it has no installation there.
    await app.gql(SET_POLICY, { input: { app: "rex", ...servicePolicy(o) } }, { token: other.tokens.admin });
    expect((await issue(other.tokens.service, { repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await issue(other.tokens.service, { installationId: o.githubInstallationId })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await app.gql(REVOKE, { id: issued.id }, { token: other.tokens.admin })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await app.gql("{ issuedTokens(first: 10) { nodes { id } } }", {}, { token: other.tokens.admin })).data.issuedTokens.nodes).toEqual([]);
    expect((await app.gql("{ tokenPolicies { name } }", {}, { token: other.tokens.admin })).data.tokenPolicies).toEqual([{ name: "ci" }]);
    expect((await reposVisibleWith(issued.token)).status).toBe(200);
  });
});

describe("metrics", () => {
  it("/metrics counts issues by app and outcome, cache hits, upstream calls and revocations", async () => {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toMatch(/keyplane_github_token_issues_total\{app="rex",outcome="issued"\} \d+/);
    expect(text).toMatch(/keyplane_github_token_issues_total\{app="rex",outcome="cached"\} \d+/);
    expect(text).toMatch(/keyplane_github_token_issues_total\{app="rex",outcome="forbidden"\} \d+/);
    expect(text).toMatch(/keyplane_github_token_cache_hits_total\{app="rex"\} \d+/);
    expect(text).toMatch(/keyplane_github_token_revocations_total\{app="rex",reason="requested"\} \d+/);
    expect(text).toMatch(/keyplane_github_upstream_request_duration_seconds_bucket\{[^}]*app="rex"/);
    expect(text).not.toMatch(/ghs_/);
  });

  it("the stored rows hold no token", async () => {
    const dump = await withPlatform(app.kp.deps.db, async (trx) => {
      const { rows } = await sql<{
        t: string;
      }>`select concat_ws(' ', (select string_agg(g::text, ' ') from github_tokens g), (select string_agg(e.data::text, ' ') from events e)) as t`.execute(trx);
      return rows[0]!.t;
    });
    expect(dump).not.toMatch(/ghs_[A-Za-z0-9]{20}/);
    expect(randomUUID()).toBeTruthy();
  });
});

describe("minValiditySeconds", () => {
  it("a caller that needs a longer-lived token than the cached one gets a fresh one; others keep reusing", async () => {
    const o = await orgWithRex();
    await setPolicy(o, servicePolicy(o));
    // GitHub's clock 40 minutes behind: its token expires about 20 minutes from now (auth-app corrects the JWT's skew).
    world.github.setClockOffset(-40 * 60_000);
    let first;
    try {
      first = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken;
    } finally {
      world.github.setClockOffset(0);
    }
    expect((new Date(first.expiresAt).getTime() - Date.now()) / 60_000).toBeLessThan(21);
    expect((await issue(o.tenant.tokens.service, { repository: `${o.org}/api` })).data.issueGitHubToken).toMatchObject({
      cached: true,
      fingerprint: first.fingerprint,
    });
    const longer = (await issue(o.tenant.tokens.service, { repository: `${o.org}/api`, minValiditySeconds: 1500 })).data.issueGitHubToken;
    expect(longer.cached).toBe(false);
    expect(longer.fingerprint).not.toBe(first.fingerprint);
    const bad = await issue(o.tenant.tokens.service, { repository: `${o.org}/api`, minValiditySeconds: 7200 });
    expect(bad.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "minValiditySeconds" });
  });
});

describe("enrolled agents", () => {
  it("an agent gets the tokens a policy allows for its tags, and no others", async () => {
    const o = await orgWithRex();
    await setPolicy(o, { name: "coders", roles: [], agentTags: ["coding-agent"], repositories: [`${o.org}/api`], permissions: { contents: "write" } });
    const agentWith = async (tags: string[]) => (await enroll(app, o.tenant, { tags })).accessToken;
    const coder = await agentWith(["coding-agent"]);
    const other = await agentWith(["support"]);
    const ok = await issue(coder, { repository: `${o.org}/api` });
    expect(ok.errors, JSON.stringify(ok.errors)).toBeUndefined();
    expect(ok.data.issueGitHubToken.permissions).toEqual({ contents: "write" });
    expect((await issue(coder, { repository: `${o.org}/infra` })).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect((await issue(other, { repository: `${o.org}/api` })).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});
