import { generateKeyPairSync, randomBytes } from "node:crypto";
import { sql } from "kysely";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, withPlatform, type DatabaseHandle } from "../../src/store/db.ts";
import { IDENTITY_EVENTS, subscribeEvents } from "../testkit/eventSubscriber.ts";
import { enroll, type EnrolledAgent } from "../testkit/fixtures.ts";
import { startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { testClock, type TestClock } from "../testkit/testClock.ts";
import { onPostgres } from "../testkit/testDatabase.ts";

// A principal (an enrolled agent, a person, a service) links its own GitHub account through the GitHub
// App's user authorization flow (state + PKCE, against the GitHub fake), gets its 8-hour user token
// refreshed with the rotating refresh token under the identity's lock, is told a day before the
// refresh token ends or at once when GitHub refuses it, and unlinks, which revokes the grant at GitHub.

const HOUR = 3600_000;
// The background sweep stays out of the way: each test runs it itself.
const QUIET = { CREDENTIAL_REFRESH_INTERVAL_SECONDS: "86400" };

const START = "mutation ($app: String) { startIdentityLink(app: $app) { authorizationUrl requestId expiresAt } }";
const LIST = `query ($subject: String) { linkedIdentities(subject: $subject) {
  id provider app subject subjectKind login accountId status accessExpiresAt refreshExpiresAt expiringNoticeAt linkedAt
  refresh { failures lastError nextAttemptAt lastRefreshedAt } } }`;
const TOKEN = "query ($app: String) { identityToken(app: $app) { identityId app login token expiresAt } }";
const UNLINK = "mutation ($id: ID!) { unlinkIdentity(id: $id) { id login } }";
const AUDIT = `query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { edges { node { type streamId data metadata } } } }`;

let world: ProviderWorld;
let app: TestApp;
let clock: TestClock;
// Processes sharing a database share their signing key (the race below plays a second process).
const env = (): Record<string, string> => ({ ...world.env, ...QUIET, KEYPLANE_SIGNING_KEY: SIGNING_KEY });
const SIGNING_KEY = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  world = await startProviderWorld();
  clock = testClock();
  app = await createTestApp({ env: env(), name: "identities", now: clock.now });
});
afterAll(async () => {
  await app?.close();
  await world?.close();
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Moves Keyplane's clock and GitHub's together (the fake's tokens expire by its own clock). */
let githubOffset = 0;
function advance(ms: number) {
  clock.advance(ms);
  githubOffset += ms;
  world.github.setClockOffset(githubOffset);
}

const login = () => `molty-${randomBytes(4).toString("hex")}`;

interface BrowserOutcome {
  status: number;
  body: any;
  /** The callback URL GitHub sent the browser back to (with code and state). */
  callback: string;
}

/** Plays the browser from the consent page: GitHub (signed in as `as`) redirects to Keyplane's callback, which answers. */
async function consent(authorizationUrl: string, as: string, accept = "application/json"): Promise<BrowserOutcome> {
  world.github.signInAs(as);
  const atGitHub = await fetch(authorizationUrl, { redirect: "manual" });
  expect(atGitHub.status, await atGitHub.clone().text()).toBe(302);
  const callback = new URL(atGitHub.headers.get("location")!, authorizationUrl).toString();
  const back = await fetch(callback, { redirect: "manual", headers: { accept } });
  const text = await back.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: back.status, body, callback };
}

/** The principal behind `token` links GitHub account `as` through startIdentityLink and the consent. */
async function link(api: TestApp, token: string, as: string, appName?: string) {
  const started = await api.gql(START, { app: appName }, { token });
  expect(started.errors).toBeUndefined();
  const outcome = await consent(started.data.startIdentityLink.authorizationUrl, as);
  expect(outcome.status, JSON.stringify(outcome.body)).toBe(200);
  return { ...outcome, requestId: started.data.startIdentityLink.requestId as string };
}

async function identityToken(api: TestApp, token: string, appName?: string) {
  const res = await api.gql(TOKEN, { app: appName }, { token });
  if (res.data?.identityToken) registerSecret(res.data.identityToken.token);
  return res;
}

async function audit(api: TestApp, tenant: SeededTenant, types: string[], token = tenant.tokens.admin) {
  const res = await api.gql(AUDIT, { types }, { token });
  expect(res.errors).toBeUndefined();
  return res.data.auditLog.edges.map((e: any) => e.node);
}

/** GitHub's own answer to "who is this token": 200 with the login, or 401 once it is dead. */
async function githubUserOf(token: string): Promise<{ status: number; login?: string }> {
  const res = await fetch(`${world.github.url}/user`, { headers: { authorization: `Bearer ${token}`, accept: "application/vnd.github+json" } });
  const body: any = await res.json().catch(() => ({}));
  return { status: res.status, login: body.login };
}

/** Every row of every table of Keyplane's database, as text: what a dump (or a stolen backup) would show. */
async function databaseDump(api: TestApp): Promise<string> {
  return withPlatform(api.kp.deps.db, async (trx) => {
    const { rows: tables } = await sql<{ name: string }>`
      select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(trx);
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(["identity_secrets", "linked_identities", "events", "oauth_states"]));
    let text = "";
    for (const { name } of tables) {
      const { rows } = await sql<{ row: string }>`select t::text as row from ${sql.table(name)} t`.execute(trx);
      text += rows.map((r) => r.row).join("\n");
    }
    return text;
  });
}

async function secretRows(api: TestApp) {
  return withPlatform(api.kp.deps.db, (trx) => trx.selectFrom("identity_secrets").selectAll().execute());
}

describe("linking a GitHub identity", () => {
  it("an enrolled agent links its own account: PKCE consent, identity.linked with fingerprints only, the token acts as that account", async () => {
    const tenant = await app.seedTenant();
    const agent = await enroll(app, tenant);
    const account = login();
    const started = await app.gql(START, {}, { token: agent.accessToken });
    expect(started.errors).toBeUndefined();
    const url = new URL(started.data.startIdentityLink.authorizationUrl);
    expect(url.origin + url.pathname).toBe(`${world.github.url}/login/oauth/authorize`);
    expect(url.searchParams.get("client_id")).toBe(world.githubApp.clientId);
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get("redirect_uri")).toBe(`${world.publicUrl}/oauth/link/github/callback`);

    const outcome = await consent(url.toString(), account);
    expect(outcome.status, JSON.stringify(outcome.body)).toBe(200);
    expect(outcome.body).toMatchObject({ outcome: "linked", identity: { login: account, subject: `agent:${agent.agentId}` } });

    const listed = await app.gql(LIST, {}, { token: agent.accessToken });
    expect(listed.errors).toBeUndefined();
    expect(listed.data.linkedIdentities).toHaveLength(1);
    const identity = listed.data.linkedIdentities[0];
    expect(identity).toMatchObject({
      provider: "github",
      app: "default",
      subject: `agent:${agent.agentId}`,
      subjectKind: "agent",
      login: account,
      status: "linked",
    });
    // GitHub's lifetimes: 8 hours for the user token, six months for the refresh token.
    const accessMs = new Date(identity.accessExpiresAt).getTime() - clock.now().getTime();
    expect(accessMs).toBeGreaterThan(8 * HOUR - 60_000);
    expect(accessMs).toBeLessThanOrEqual(8 * HOUR);
    expect(new Date(identity.refreshExpiresAt).getTime() - clock.now().getTime()).toBeGreaterThan(183 * 24 * HOUR);

    const handed = await identityToken(app, agent.accessToken);
    expect(handed.errors).toBeUndefined();
    expect(handed.data.identityToken).toMatchObject({ identityId: identity.id, app: "default", login: account });
    expect(handed.data.identityToken.token).toMatch(/^ghu_/);
    expect(await githubUserOf(handed.data.identityToken.token)).toEqual({ status: 200, login: account });

    const events = await audit(app, tenant, ["identity.link_requested", "identity.linked", "identity.token_issued"]);
    expect(events.map((e: any) => e.type)).toEqual(["identity.link_requested", "identity.linked", "identity.token_issued"]);
    const linked = events[1];
    expect(linked.metadata.actor).toMatchObject({ subject: `agent:${agent.agentId}`, kind: "agent" });
    expect(linked.data).toMatchObject({ identityId: identity.id, login: account, relinked: false, accessFingerprint: expect.any(String), keyId: "k1" });
    expect(events[2].data.fingerprint).toBe(linked.data.accessFingerprint);
    // No token in any event or read table; the vault holds ciphertext.
    const dump = JSON.stringify(events) + JSON.stringify(listed.data) + (await databaseDump(app));
    expect(dump).toContain(linked.data.accessFingerprint);
    expect(dump).not.toContain(handed.data.identityToken.token);
    expect(dump).not.toMatch(/ghu_|ghr_/);
  });

  it("a person links through GET /oauth/link/github with a redirect; linking again replaces the account and keeps the identity", async () => {
    const tenant = await app.seedTenant();
    const first = login();
    const redirect = await fetch(`${app.url}/oauth/link/github`, { redirect: "manual", headers: { authorization: `Bearer ${tenant.tokens.viewer}` } });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("cache-control")).toBe("no-store");
    const html = await consent(redirect.headers.get("location")!, first, "text/html");
    expect(html.status).toBe(200);
    expect(html.body).toContain(`GitHub account ${first} is linked`);

    expect(world.github.userTokenCount(first)).toBe(1);
    const second = login();
    const again = await link(app, tenant.tokens.viewer, second);
    expect(again.body.outcome).toBe("relinked");
    // The replaced account's grant was revoked at GitHub.
    expect(world.github.userTokenCount(first)).toBe(0);
    const listed = (await app.gql(LIST, {}, { token: tenant.tokens.viewer })).data.linkedIdentities;
    expect(listed.map((i: any) => i.login)).toEqual([second]);
    const [linkedFirst, linkedAgain] = (await audit(app, tenant, ["identity.linked"])).map((e: any) => e.data);
    expect(linkedAgain).toMatchObject({ identityId: linkedFirst.identityId, relinked: true, previousLogin: first, login: second });
    // A person never holds a user token through Keyplane: that is for services and agents.
    const refused = await identityToken(app, tenant.tokens.viewer);
    expect(refused.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });

  it("a consent comes back once: a replayed callback, a link state at the install callback, a missing or unknown state store nothing", async () => {
    const tenant = await app.seedTenant();
    const done = await link(app, tenant.tokens.service, login());
    const countsBefore = await counts();
    const replay = await fetch(done.callback, { headers: { accept: "application/json" } });
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as any).error).toMatchObject({ code: "BAD_USER_INPUT", message: expect.stringContaining("already used") });

    // A link's state is no installation's.
    const started = await app.gql(START, {}, { token: tenant.tokens.service });
    world.github.signInAs(login());
    const atGitHub = await fetch(started.data.startIdentityLink.authorizationUrl, { redirect: "manual" });
    const callback = new URL(atGitHub.headers.get("location")!);
    const asInstall = await fetch(`${app.url}/oauth/callback/github?state=${callback.searchParams.get("state")}&installation_id=1&setup_action=install`, {
      headers: { accept: "application/json" },
    });
    expect(asInstall.status).toBe(400);
    expect(((await asInstall.json()) as any).error.message).toContain("issued to link an identity");

    for (const query of ["", "?state=nope&code=x"]) {
      const res = await fetch(`${app.url}/oauth/link/github/callback${query}`, { headers: { accept: "application/json" } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error.code).toBe("BAD_USER_INPUT");
    }
    expect(await counts()).toEqual({ ...countsBefore, events: (await counts()).events });
    const identities = (await app.gql(LIST, {}, { token: tenant.tokens.service })).data.linkedIdentities;
    expect(identities).toHaveLength(1);
  });

  it("the user denying consent links nothing", async () => {
    const tenant = await app.seedTenant();
    const started = await app.gql(START, {}, { token: tenant.tokens.service });
    world.github.denyNextAuthorization();
    const atGitHub = await fetch(started.data.startIdentityLink.authorizationUrl, { redirect: "manual" });
    const back = await fetch(new URL(atGitHub.headers.get("location")!), { headers: { accept: "application/json" } });
    expect(back.status).toBeGreaterThanOrEqual(400);
    expect(((await back.json()) as any).error).toMatchObject({ code: "PROVIDER_ERROR", message: expect.stringContaining("access_denied") });
    expect((await app.gql(LIST, {}, { token: tenant.tokens.service })).data.linkedIdentities).toEqual([]);
  });
});

async function counts() {
  return withPlatform(app.kp.deps.db, async (trx) => {
    const out: Record<string, number> = {};
    for (const table of ["linked_identities", "identity_secrets", "events"] as const) {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(trx);
      out[table] = Number(rows[0]!.n);
    }
    return out;
  });
}

/**
 * A tenant whose service principal and admin hold tokens that outlive the months these tests move
 * the clock by (the seeded tokens live an hour).
 */
async function longLived(api: TestApp = app) {
  const tenant = await api.seedTenant();
  const ttlSeconds = 366 * 86400;
  const subject = `svc-${randomBytes(4).toString("hex")}`;
  const principal = await api.mintToken({ tenantId: tenant.tenantId, roles: ["service"], subject, ttlSeconds });
  const admin = await api.mintToken({ tenantId: tenant.tenantId, roles: ["admin"], ttlSeconds });
  return { tenant, subject, principal, admin };
}

describe("refreshing, expiry notices and refusals", () => {
  it("an expired user token is refreshed on use with the rotating refresh token: identity.refreshed, the old refresh token spent", async () => {
    const { tenant, principal, admin } = await longLived();
    const account = login();
    await link(app, principal, account);
    const before = (await identityToken(app, principal)).data.identityToken;
    advance(8 * HOUR);
    expect((await githubUserOf(before.token)).status).toBe(401);

    const after = (await identityToken(app, principal)).data.identityToken;
    expect(after.token).not.toBe(before.token);
    expect(await githubUserOf(after.token)).toEqual({ status: 200, login: account });
    const refreshed = await audit(app, tenant, ["identity.refreshed"], admin);
    expect(refreshed).toHaveLength(1);
    expect(refreshed[0].metadata.actor.subject).toBe("identity-refresher");
    const listed = (await app.gql(LIST, {}, { token: principal })).data.linkedIdentities[0];
    expect(listed.refresh).toMatchObject({ failures: 0, lastError: null });
    expect(new Date(listed.refresh.lastRefreshedAt).getTime()).toBeGreaterThan(0);
  });

  it("GitHub refusing the refresh token (the user revoked the app) marks it needs_relink and tells the principal at once on identityEvents", async () => {
    const { tenant, subject, principal, admin } = await longLived();
    await link(app, principal, login());
    const own = subscribeEvents(app.url, principal, {}, { query: IDENTITY_EVENTS, field: "identityEvents" });
    cleanups.push(() => own.dispose());
    await own.connected;
    const token = (await identityToken(app, principal)).data.identityToken.token;
    await own.until((events) => events.some((e) => e.type === "identity.token_issued"));
    // The user revokes the app at GitHub (what the grant endpoint does for them).
    const revoked = await fetch(`${world.github.url}/applications/${world.githubApp.clientId}/grant`, {
      method: "DELETE",
      headers: {
        authorization: `Basic ${Buffer.from(`${world.githubApp.clientId}:${world.githubApp.clientSecret}`).toString("base64")}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ access_token: token }),
    });
    expect(revoked.status).toBe(204);
    advance(8 * HOUR);

    const refused = await identityToken(app, principal);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: "CONFLICT", status: "needs_relink" });
    const events = await own.until((received) => received.some((e) => e.type === "identity.expiring"));
    const expiring = events.find((e) => e.type === "identity.expiring")!;
    expect(expiring.data).toMatchObject({ subject, reason: "refresh_refused" });
    const failed = await audit(app, tenant, ["identity.refresh_failed"], admin);
    expect(failed.map((e: any) => e.data)).toEqual([expect.objectContaining({ providerCode: "bad_refresh_token", rejected: true })]);
    expect((await app.gql(LIST, {}, { token: principal })).data.linkedIdentities[0].status).toBe("needs_relink");
    // Asked again: refused at once, without asking GitHub (no second failure).
    expect((await identityToken(app, principal)).errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect(await audit(app, tenant, ["identity.refresh_failed"], admin)).toHaveLength(1);
  });

  it("a day before the refresh token ends, the sweep tells the principal once (identity.expiring on its subscription)", async () => {
    const { tenant, subject, principal, admin } = await longLived();
    await link(app, principal, login());
    const other = await app.mintToken({ tenantId: tenant.tenantId, roles: ["service"], subject: "svc-other", ttlSeconds: 366 * 86400 });
    await link(app, other, login());
    const own = subscribeEvents(app.url, principal, {}, { query: IDENTITY_EVENTS, field: "identityEvents" });
    cleanups.push(() => own.dispose());
    await own.connected;
    const identity = (await app.gql(LIST, {}, { token: principal })).data.linkedIdentities[0];

    // Two days before: nothing yet.
    clock.advanceTo(new Date(identity.refreshExpiresAt).getTime() - 48 * HOUR);
    await app.kp.refresher.runOnce();
    expect(await audit(app, tenant, ["identity.expiring"], admin)).toEqual([]);
    clock.advanceTo(new Date(identity.refreshExpiresAt).getTime() - 23 * HOUR);
    const swept = await app.kp.refresher.runOnce();
    expect(swept.identitiesNoticed).toBeGreaterThanOrEqual(2);
    const received = await own.until((events) => events.some((e) => e.type === "identity.expiring"));
    // Only its own: the other principal's notice is not on this subscription.
    expect(received.filter((e) => e.type === "identity.expiring").map((e) => e.data)).toEqual([
      expect.objectContaining({ subject, reason: "refresh_token_expiring", refreshExpiresAt: identity.refreshExpiresAt }),
    ]);
    expect((await app.kp.refresher.runOnce()).identitiesNoticed).toBe(0);
    const notices = await audit(app, tenant, ["identity.expiring"], admin);
    expect(notices.map((e: any) => e.data.subject).sort()).toEqual([subject, "svc-other"].sort());
    expect((await app.gql(LIST, {}, { token: principal })).data.linkedIdentities[0].expiringNoticeAt).not.toBeNull();
    // Admins receive identity events live (identity:manage); a viewer's live types do not include them.
    const adminTypes = (await app.gql("{ me { liveEventTypes } }", {}, { token: admin })).data.me.liveEventTypes;
    expect(adminTypes).toContain("identity.expiring");
    const viewer = await app.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"], ttlSeconds: 366 * 86400 });
    expect((await app.gql("{ me { liveEventTypes } }", {}, { token: viewer })).data.me.liveEventTypes).not.toContain("identity.expiring");
  });
});

describe("round trips", () => {
  it("identityToken while the user token lives costs one transaction: the identity, its tokens, the hand-out's record", async () => {
    const { principal } = await longLived();
    await link(app, principal, login());
    await identityToken(app, principal);
    const { result, roundTrips } = await app.roundTripsOf(() => identityToken(app, principal));
    expect(result.errors).toBeUndefined();
    // BEGIN with the tenant scope, the identity, its tokens, the append, COMMIT.
    expect(roundTrips).toBeLessThanOrEqual(5);
  });
});

describe("unlinking", () => {
  it("revokes the grant at GitHub (the token and refresh token die), deletes the tokens and records identity.unlinked", async () => {
    const tenant = await app.seedTenant();
    const agent = await enroll(app, tenant);
    await link(app, agent.accessToken, login());
    const token = (await identityToken(app, agent.accessToken)).data.identityToken;
    const unlinked = await app.gql(UNLINK, { id: token.identityId }, { token: agent.accessToken });
    expect(unlinked.errors).toBeUndefined();
    expect(unlinked.data.unlinkIdentity.id).toBe(token.identityId);
    expect((await githubUserOf(token.token)).status).toBe(401);
    expect((await app.gql(LIST, {}, { token: agent.accessToken })).data.linkedIdentities).toEqual([]);
    expect((await secretRows(app)).filter((r) => r.identity_id === token.identityId)).toEqual([]);
    const [event] = await audit(app, tenant, ["identity.unlinked"]);
    expect(event.data).toMatchObject({ identityId: token.identityId, revokedAtGitHub: true, reason: "unlinked", subject: `agent:${agent.agentId}` });
    expect((await identityToken(app, agent.accessToken)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    // Gone: unlinking again is NOT_FOUND.
    expect((await app.gql(UNLINK, { id: token.identityId }, { token: agent.accessToken })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  });

  it("a deleted agent's identity is unlinked by the next sweep: its grant revoked at GitHub, its tokens deleted", async () => {
    const tenant = await app.seedTenant();
    const agent = await enroll(app, tenant);
    await link(app, agent.accessToken, login());
    const token = (await identityToken(app, agent.accessToken)).data.identityToken;
    const deleted = await app.gql("mutation ($id: ID!) { deleteAgent(id: $id) }", { id: agent.agentId }, { token: tenant.tokens.admin });
    expect(deleted.errors).toBeUndefined();
    expect((await githubUserOf(token.token)).status).toBe(200);
    expect((await app.kp.refresher.runOnce()).identitiesUnlinked).toBeGreaterThanOrEqual(1);
    expect((await githubUserOf(token.token)).status).toBe(401);
    expect((await secretRows(app)).filter((r) => r.identity_id === token.identityId)).toEqual([]);
    const [event] = await audit(app, tenant, ["identity.unlinked"]);
    expect(event.data).toMatchObject({ identityId: token.identityId, reason: "principal-deleted", revokedAtGitHub: true });
    expect(event.metadata.actor.subject).toBe("identity-reaper");
    expect((await app.kp.refresher.runOnce()).identitiesUnlinked).toBe(0);
  });

  it("another principal of the tenant cannot see or unlink an identity; its admin can (identity:manage)", async () => {
    const tenant = await app.seedTenant();
    const agent = await enroll(app, tenant);
    await link(app, agent.accessToken, login());
    const id = (await app.gql(LIST, {}, { token: agent.accessToken })).data.linkedIdentities[0].id;
    expect((await app.gql(LIST, {}, { token: tenant.tokens.service })).data.linkedIdentities).toEqual([]);
    expect((await app.gql(UNLINK, { id }, { token: tenant.tokens.service })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const all = await app.gql(LIST, { subject: `agent:${agent.agentId}` }, { token: tenant.tokens.admin });
    expect(all.data.linkedIdentities.map((i: any) => i.id)).toEqual([id]);
    expect((await app.gql(UNLINK, { id }, { token: tenant.tokens.admin })).errors).toBeUndefined();
    const [event] = await audit(app, tenant, ["identity.unlinked"]);
    expect(event.metadata.actor.roles).toEqual(["admin"]);
  });
});

describe("tenant isolation of identities", () => {
  it("another tenant's tokens see none of them, get no token and unlink nothing", async () => {
    const tenant = await app.seedTenant();
    const agent: EnrolledAgent = await enroll(app, tenant);
    await link(app, agent.accessToken, login());
    const id = (await app.gql(LIST, {}, { token: agent.accessToken })).data.linkedIdentities[0].id;
    const other = await app.seedTenant();
    const otherAgent = await enroll(app, other);
    for (const token of [other.tokens.admin, other.tokens.service, otherAgent.accessToken]) {
      const listed = await app.gql(LIST, { subject: `agent:${agent.agentId}` }, { token });
      expect(listed.data.linkedIdentities).toEqual([]);
      expect((await app.gql(UNLINK, { id }, { token })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    }
    expect((await identityToken(app, otherAgent.accessToken)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await app.gql(LIST, {}, { token: agent.accessToken })).data.linkedIdentities).toHaveLength(1);
    expect(await audit(app, other, ["identity.linked", "identity.unlinked", "identity.token_issued"])).toEqual([]);
  });
});

async function secondPool(database: DatabaseHandle): Promise<DatabaseHandle> {
  const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(database.db);
  const url = new URL(process.env.TEST_DATABASE_URL!);
  url.pathname = `/${rows[0]!.name}`;
  return openDatabase({ url: url.toString(), poolMax: 12 });
}

describe.skipIf(!onPostgres)("refresh race: two processes, one database", () => {
  it("both ask for the expired token at once: one refresh, the same new token for both, the refresh token presented once", async () => {
    // The second process: the same database through a pool of its own, the same clock, no port of its own to call back to.
    const other = await secondPool(app.database);
    cleanups.push(() => other.close());
    const { PORT: _port, ...envB } = env();
    const b = await createTestApp({ env: envB, database: other, name: "identity-process-b", now: clock.now });
    cleanups.push(() => b.close());
    const { tenant, principal, admin } = await longLived();
    const account = login();
    await link(app, principal, account);

    for (let round = 1; round <= 3; round++) {
      advance(8 * HOUR);
      const [fromA, fromB] = await Promise.all([identityToken(app, principal), identityToken(b, principal)]);
      expect(fromA.errors, `round ${round}`).toBeUndefined();
      expect(fromB.errors, `round ${round}`).toBeUndefined();
      expect(fromA.data.identityToken.token).toBe(fromB.data.identityToken.token);
      expect(await githubUserOf(fromA.data.identityToken.token)).toEqual({ status: 200, login: account });
      expect(await audit(app, tenant, ["identity.refreshed"], admin), `round ${round}`).toHaveLength(round);
      expect(await audit(app, tenant, ["identity.refresh_failed"], admin)).toEqual([]);
    }
  });
});
