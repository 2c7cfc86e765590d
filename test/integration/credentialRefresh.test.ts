import { generateKeyPairSync } from "node:crypto";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { readCredentials } from "../../src/app/installations/vault.ts";
import { openDatabase, withTenant, type DatabaseHandle } from "../../src/store/db.ts";
import { startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { createTestDatabase, onPostgres } from "../testkit/testDatabase.ts";
import { testClock, type TestClock } from "../testkit/testClock.ts";
import { seedInstallation } from "../testkit/fixtures.ts";

// Rotating credentials (Jira here: Atlassian 3LO, single-use refresh tokens) are refreshed ahead of
// expiry by the sweep and on read, under a per-installation lock so that no refresh token is ever
// presented twice, with backoff on transient failures and needs_reauth when the provider refuses.

const INSTALLATION = `query($id: ID!) { installation(id: $id) {
  id status credentialFingerprint credentialsExpiresAt
  refresh { lastRefreshedAt failures lastError nextAttemptAt } } }`;
const CREDENTIALS = `query($id: ID!) { installationCredentials(id: $id) { accessToken expiresAt } }`;
const AUDIT = `query($id: String!) { auditLog(first: 100, filter: { streamId: $id }) { edges { node { type data } } } }`;

/** The refresh window (CREDENTIAL_REFRESH_WINDOW_SECONDS's default) and a token lifetime well inside it. */
const WINDOW_SECONDS = 600;
const SHORT_TTL = 120;
// The background sweep stays out of the way: each test runs the sweep itself.
const QUIET = { CREDENTIAL_REFRESH_INTERVAL_SECONDS: "86400" };

interface World {
  world: ProviderWorld;
  app: TestApp;
  tenant: SeededTenant;
  admin: string;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

/** A fresh world per test: the fake's counters and the sweep's view belong to that test alone. */
async function setup(options: { ttl?: number } = {}): Promise<World> {
  const world = await startProviderWorld();
  cleanups.push(() => world.close());
  if (options.ttl) world.atlassian.accessTokenTtlSeconds = options.ttl;
  const app = await createTestApp({ env: { ...world.env, ...QUIET }, name: "credential-refresh" });
  cleanups.push(() => app.close());
  const tenant = await app.seedTenant();
  const admin = await app.mintToken({ tenantId: tenant.tenantId, roles: ["admin"] });
  return { world, app, tenant, admin };
}

const installJira = (app: TestApp, editorToken: string) => seedInstallation(app, editorToken, "jira");

async function installation(w: World, id: string) {
  const res = await w.app.gql(INSTALLATION, { id }, { token: w.tenant.tokens.viewer });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data.installation;
}

async function events(w: World, id: string): Promise<Array<{ type: string; data: any }>> {
  const res = await w.app.gql(AUDIT, { id }, { token: w.admin });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data.auditLog.edges.map((e: any) => e.node);
}

/** What the vault holds, read with the keyring (the test's only view of the refresh token). */
async function vault(app: TestApp, tenantId: string, id: string) {
  const entry = await withTenant(app.kp.deps.db, tenantId, (trx) => readCredentials(trx, app.kp.deps.keyring, tenantId, id));
  return entry!.credentials;
}

async function credentials(app: TestApp, token: string, id: string) {
  const res = await app.gql(CREDENTIALS, { id }, { token });
  if (!res.errors) registerSecret(res.data.installationCredentials.accessToken);
  return res;
}

const tokenRequests = (world: ProviderWorld) => world.atlassian.requests.filter((r) => r.method === "POST" && r.path === "/oauth/token").length;

/** Presents a refresh token to the fake directly, as a thief holding an old one would. */
async function presentRefreshToken(world: ProviderWorld, refreshToken: string) {
  const res = await fetch(`${world.atlassian.url}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      grant_type: "refresh_token",
      client_id: world.env.ATLASSIAN_CLIENT_ID,
      client_secret: world.env.ATLASSIAN_CLIENT_SECRET,
      refresh_token: refreshToken,
    }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe("credential refresh", () => {
  it("the sweep refreshes credentials expiring within the window: new pair works, old one is spent, all recorded", async () => {
    const w = await setup({ ttl: SHORT_TTL });
    const { id } = await installJira(w.app, w.tenant.tokens.editor);
    const old = await vault(w.app, w.tenant.tenantId, id);
    const before = await installation(w, id);
    expect(before.refresh).toEqual({ lastRefreshedAt: null, failures: 0, lastError: null, nextAttemptAt: null });
    expect(new Date(before.credentialsExpiresAt).getTime() - Date.now()).toBeLessThan(WINDOW_SECONDS * 1000);

    // New tokens live an hour: refreshed once, they are not due again.
    w.world.atlassian.accessTokenTtlSeconds = 3600;
    const started = Date.now();
    expect(await w.app.kp.refresher.runOnce()).toEqual({ refreshed: 1, failed: 0, identitiesNoticed: 0, identitiesUnlinked: 0 });
    expect(w.world.atlassian.refreshCount).toBe(1);
    expect(w.world.atlassian.refreshTokenReuseCount).toBe(0);

    const fresh = await vault(w.app, w.tenant.tenantId, id);
    expect(fresh.accessToken).not.toBe(old.accessToken);
    expect(fresh.refreshToken).toBeDefined();
    expect(fresh.refreshToken).not.toBe(old.refreshToken);
    expect(w.world.atlassian.isAccessTokenValid(fresh.accessToken)).toBe(true);
    expect(w.world.atlassian.isAccessTokenValid(old.accessToken)).toBe(false);

    const after = await installation(w, id);
    expect(after.status).toBe("active");
    expect(after.credentialFingerprint).not.toBe(before.credentialFingerprint);
    expect(after.refresh.failures).toBe(0);
    expect(after.refresh.lastError).toBeNull();
    expect(new Date(after.refresh.lastRefreshedAt).getTime()).toBeGreaterThanOrEqual(started - 1000);
    expect(new Date(after.credentialsExpiresAt).getTime() - Date.now()).toBeGreaterThan(3500_000);

    const refreshed = (await events(w, id)).filter((e) => e.type === "installation.credentials_refreshed");
    expect(refreshed).toHaveLength(1);
    expect(refreshed[0]!.data).toMatchObject({
      installationId: id,
      fingerprint: after.credentialFingerprint,
      previousFingerprint: before.credentialFingerprint,
      keyId: "k1",
    });
    expect(JSON.stringify(refreshed[0]!.data)).not.toContain(fresh.accessToken);

    // Not due any more: another sweep leaves it alone, and a service is handed the refreshed token.
    expect(await w.app.kp.refresher.runOnce()).toEqual({ refreshed: 0, failed: 0, identitiesNoticed: 0, identitiesUnlinked: 0 });
    const read = await credentials(w.app, w.tenant.tokens.service, id);
    expect(read.data.installationCredentials.accessToken).toBe(fresh.accessToken);
    expect(w.world.atlassian.refreshCount).toBe(1);

    // The refresh token Keyplane spent is dead at the provider (presenting it again is theft to Atlassian).
    const replay = await presentRefreshToken(w.world, old.refreshToken!);
    expect(replay.status).toBe(403);
    expect(replay.body.error).toBe("invalid_grant");
  });

  it("a read of credentials near expiry refreshes first, and the refreshed token is then served from the vault", async () => {
    const w = await setup({ ttl: SHORT_TTL });
    const { id } = await installJira(w.app, w.tenant.tokens.editor);
    const old = await vault(w.app, w.tenant.tenantId, id);
    const before = await installation(w, id);
    w.world.atlassian.accessTokenTtlSeconds = 3600;

    const read = await credentials(w.app, w.tenant.tokens.service, id);
    expect(read.errors, JSON.stringify(read.errors)).toBeUndefined();
    const token = read.data.installationCredentials.accessToken as string;
    expect(token).not.toBe(old.accessToken);
    expect(w.world.atlassian.isAccessTokenValid(token)).toBe(true);
    expect(w.world.atlassian.isAccessTokenValid(old.accessToken)).toBe(false);
    expect(new Date(read.data.installationCredentials.expiresAt).getTime() - Date.now()).toBeGreaterThan(3500_000);
    expect(w.world.atlassian.refreshCount).toBe(1);
    expect((await vault(w.app, w.tenant.tenantId, id)).accessToken).toBe(token);
    const after = await installation(w, id);
    expect(after.credentialFingerprint).not.toBe(before.credentialFingerprint);
    expect(after.refresh.lastRefreshedAt).not.toBeNull();

    // Fresh now: the next read is served from the vault without asking the provider.
    const again = await credentials(w.app, w.tenant.tokens.service, id);
    expect(again.data.installationCredentials.accessToken).toBe(token);
    expect(w.world.atlassian.refreshCount).toBe(1);

    const types = (await events(w, id)).map((e) => e.type);
    expect(types.filter((t) => t === "installation.credentials_refreshed")).toHaveLength(1);
    expect(types.filter((t) => t === "credentials.read")).toHaveLength(2);
    // The refresh is committed before the first hand-out of the new token.
    expect(types.indexOf("installation.credentials_refreshed")).toBeLessThan(types.indexOf("credentials.read"));
  });

  it("concurrent reads near expiry in one process share one refresh and all succeed", async () => {
    const w = await setup({ ttl: SHORT_TTL });
    const { id } = await installJira(w.app, w.tenant.tokens.editor);
    const old = await vault(w.app, w.tenant.tenantId, id);
    w.world.atlassian.accessTokenTtlSeconds = 3600;

    const reads = await Promise.all(Array.from({ length: 5 }, () => credentials(w.app, w.tenant.tokens.service, id)));
    for (const read of reads) expect(read.errors, JSON.stringify(read.errors)).toBeUndefined();
    const tokens = new Set(reads.map((r) => r.data.installationCredentials.accessToken as string));
    expect(tokens.size).toBe(1);
    expect([...tokens][0]).not.toBe(old.accessToken);
    expect(w.world.atlassian.isAccessTokenValid([...tokens][0]!)).toBe(true);
    expect(w.world.atlassian.refreshCount).toBe(1);
    expect(w.world.atlassian.refreshTokenReuseCount).toBe(0);
    // Every hand-out is audited.
    expect((await events(w, id)).filter((e) => e.type === "credentials.read")).toHaveLength(5);
  });

  it("a refused refresh marks the installation needs_reauth until it is installed again", async () => {
    const w = await setup({ ttl: SHORT_TTL });
    const jira = await installJira(w.app, w.tenant.tokens.editor);
    const old = await vault(w.app, w.tenant.tenantId, jira.id);
    w.world.atlassian.revokeGrant(old.accessToken); // the user removed the app at Atlassian

    expect(await w.app.kp.refresher.runOnce()).toEqual({ refreshed: 0, failed: 1, identitiesNoticed: 0, identitiesUnlinked: 0 });
    const marked = await installation(w, jira.id);
    expect(marked.status).toBe("needs_reauth");
    expect(marked.refresh.lastError).toBe("invalid_grant");
    expect(marked.refresh.nextAttemptAt).toBeNull();
    const needsReauth = (await events(w, jira.id)).filter((e) => e.type === "installation.needs_reauth");
    expect(needsReauth).toHaveLength(1);
    expect(needsReauth[0]!.data).toMatchObject({ installationId: jira.id, providerCode: "invalid_grant" });

    const refused = await credentials(w.app, w.tenant.tokens.service, jira.id);
    expect(refused.data?.installationCredentials ?? null).toBeNull();
    expect(refused.errors![0]!.extensions!.code).toBe("CONFLICT");
    expect(refused.errors![0]!.message).toMatch(/needs reauth/);

    // The sweep no longer asks the provider.
    const asked = tokenRequests(w.world);
    expect(await w.app.kp.refresher.runOnce()).toEqual({ refreshed: 0, failed: 0, identitiesNoticed: 0, identitiesUnlinked: 0 });
    expect(tokenRequests(w.world)).toBe(asked);
    const filtered = await w.app.gql(`{ installations(first: 10, status: needs_reauth) { nodes { id } } }`, {}, { token: w.tenant.tokens.viewer });
    expect(filtered.data.installations.nodes.map((n: any) => n.id)).toEqual([jira.id]);

    // Installing again for the same site re-authorizes the same installation.
    w.world.atlassian.accessTokenTtlSeconds = 3600;
    w.world.atlassian.setNextSites([{ id: jira.externalId, name: jira.login, url: `https://${jira.login}.atlassian.net` }]);
    const again = await installJira(w.app, w.tenant.tokens.editor);
    expect(again.outcome).toBe("reauthorized");
    expect(again.id).toBe(jira.id);
    const restored = await installation(w, jira.id);
    expect(restored.status).toBe("active");
    expect(restored.refresh).toMatchObject({ failures: 0, lastError: null, nextAttemptAt: null });
    const read = await credentials(w.app, w.tenant.tokens.service, jira.id);
    expect(read.errors).toBeUndefined();
    expect(read.data.installationCredentials.accessToken).not.toBe(old.accessToken);
    expect(w.world.atlassian.isAccessTokenValid(read.data.installationCredentials.accessToken)).toBe(true);
    expect((await events(w, jira.id)).map((e) => e.type)).toContain("installation.reauthorized");
  });

  it("a transient failure backs off: recorded, retried only after nextAttemptAt, status stays active", async () => {
    const w = await setup({ ttl: SHORT_TTL });
    const { id } = await installJira(w.app, w.tenant.tokens.editor);
    const old = await vault(w.app, w.tenant.tenantId, id);
    w.world.atlassian.accessTokenTtlSeconds = 3600;
    w.world.atlassian.failNextRefresh({ status: 503 });

    const asked = tokenRequests(w.world);
    const failedAt = Date.now();
    expect(await w.app.kp.refresher.runOnce()).toEqual({ refreshed: 0, failed: 1, identitiesNoticed: 0, identitiesUnlinked: 0 });
    expect(tokenRequests(w.world)).toBe(asked + 1);
    expect(w.world.atlassian.refreshCount).toBe(0);

    const backingOff = await installation(w, id);
    expect(backingOff.status).toBe("active");
    expect(backingOff.refresh.failures).toBe(1);
    expect(backingOff.refresh.lastError).toBe("server_error");
    const nextAttemptAt = new Date(backingOff.refresh.nextAttemptAt).getTime();
    // 30 s ± 20% after the failure.
    expect(nextAttemptAt).toBeGreaterThan(failedAt + 20_000);
    expect(nextAttemptAt).toBeLessThan(Date.now() + 40_000);
    const failed = (await events(w, id)).filter((e) => e.type === "installation.refresh_failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data).toMatchObject({ installationId: id, providerCode: "server_error", attempt: 1, nextAttemptAt: backingOff.refresh.nextAttemptAt });

    // Before nextAttemptAt the sweep does not call the provider.
    expect(await w.app.kp.refresher.runOnce()).toEqual({ refreshed: 0, failed: 0, identitiesNoticed: 0, identitiesUnlinked: 0 });
    expect(tokenRequests(w.world)).toBe(asked + 1);
    // The old pair is intact: nothing was spent by the failed attempt.
    expect(await vault(w.app, w.tenant.tenantId, id)).toMatchObject({ accessToken: old.accessToken, refreshToken: old.refreshToken });
    expect(w.world.atlassian.isAccessTokenValid(old.accessToken)).toBe(true);
    expect(w.world.atlassian.refreshTokenReuseCount).toBe(0);
  });

  it("a transient failure while reading a still-valid token hands out that token and backs off", async () => {
    const w = await setup({ ttl: SHORT_TTL });
    const { id } = await installJira(w.app, w.tenant.tokens.editor);
    const old = await vault(w.app, w.tenant.tenantId, id);
    w.world.atlassian.accessTokenTtlSeconds = 3600;
    w.world.atlassian.failNextRefresh({ status: 503 });

    const read = await credentials(w.app, w.tenant.tokens.service, id);
    expect(read.errors, JSON.stringify(read.errors)).toBeUndefined();
    expect(read.data.installationCredentials.accessToken).toBe(old.accessToken);
    expect(w.world.atlassian.isAccessTokenValid(old.accessToken)).toBe(true);
    const backingOff = await installation(w, id);
    expect(backingOff.refresh).toMatchObject({ failures: 1, lastError: "server_error" });
    expect(backingOff.status).toBe("active");

    // While backing off, reads keep handing out the valid token without asking the provider.
    const asked = tokenRequests(w.world);
    const again = await credentials(w.app, w.tenant.tokens.service, id);
    expect(again.data.installationCredentials.accessToken).toBe(old.accessToken);
    expect(tokenRequests(w.world)).toBe(asked);
  });
});

/** A second connection pool to the test database: another Keyplane process sharing it. */
async function secondPool(database: DatabaseHandle): Promise<DatabaseHandle> {
  const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(database.db);
  const url = new URL(process.env.TEST_DATABASE_URL!);
  url.pathname = `/${rows[0]!.name}`;
  return openDatabase({ url: url.toString(), poolMax: 12 });
}

describe.skipIf(!onPostgres)("credential refresh: two processes, one database", () => {
  // Fresh tokens live just past the window, so each round's refresh is not due again for the
  // other process, and becomes due again a few seconds later.
  const TTL = WINDOW_SECONDS + 3;

  async function twoProcesses() {
    const world = await startProviderWorld();
    cleanups.push(() => world.close());
    const database = await createTestDatabase();
    cleanups.push(() => database.close());
    const other = await secondPool(database);
    cleanups.push(() => other.close());
    // Processes sharing a database share their keys: the encryption keys and the signing key.
    const signingKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const env: Record<string, string> = { ...world.env, ...QUIET, KEYPLANE_SIGNING_KEY: signingKey };
    // One clock for both, as two processes share the system's: a test moves it to the next round.
    const clock = testClock();
    const a = await createTestApp({ env, database, name: "refresh-process-a", now: clock.now });
    cleanups.push(() => a.close());
    const { PORT: _port, ...envB } = env;
    const b = await createTestApp({ env: envB, database: other, name: "refresh-process-b", now: clock.now });
    cleanups.push(() => b.close());
    const tenant = await a.seedTenant();
    world.atlassian.accessTokenTtlSeconds = SHORT_TTL;
    const { id } = await installJira(a, tenant.tokens.editor);
    world.atlassian.accessTokenTtlSeconds = TTL;
    const untilDue = () => moveToDue(clock, a, tenant.tenantId, id);
    return { world, a, b, tenant, id, untilDue };
  }

  /**
   * Moves both processes' clock to when the stored token is due (expires within the window) again.
   * Only a sweep could observe "due", and the concurrent sweeps after it are what the test is about.
   */
  async function moveToDue(clock: TestClock, app: TestApp, tenantId: string, id: string) {
    const { expiresAt } = await vault(app, tenantId, id);
    clock.advanceTo(expiresAt!.getTime() - WINDOW_SECONDS * 1000 + 50);
  }

  it("concurrent sweeps in both processes refresh once per round and never reuse a refresh token", async () => {
    const { world, a, b, tenant, id, untilDue } = await twoProcesses();
    const rounds = 4;
    for (let round = 1; round <= rounds; round++) {
      await untilDue();
      const [ra, rb] = await Promise.all([a.kp.refresher.runOnce(), b.kp.refresher.runOnce()]);
      expect(ra.failed + rb.failed, `round ${round}`).toBe(0);
      expect(ra.refreshed + rb.refreshed, `round ${round}`).toBe(1);
      expect(world.atlassian.refreshCount, `round ${round}`).toBe(round);
      expect(world.atlassian.refreshTokenReuseCount, `round ${round}`).toBe(0);
    }
    const stored = await vault(b, tenant.tenantId, id);
    expect(world.atlassian.isAccessTokenValid(stored.accessToken)).toBe(true);
    const service = tenant.tokens.service;
    const viaB = await credentials(b, service, id);
    expect(viaB.errors, JSON.stringify(viaB.errors)).toBeUndefined();
    const status = await b.gql(INSTALLATION, { id }, { token: tenant.tokens.viewer });
    expect(status.data.installation.status).toBe("active");
    expect(status.data.installation.refresh.failures).toBe(0);
  });

  it("concurrent reads through both processes refresh once and hand out the same token", async () => {
    const { world, a, b, tenant, id, untilDue } = await twoProcesses();
    const rounds = 3;
    for (let round = 1; round <= rounds; round++) {
      await untilDue();
      const reads = await Promise.all(Array.from({ length: 6 }, (_, i) => credentials(i % 2 ? b : a, tenant.tokens.service, id)));
      for (const read of reads) expect(read.errors, JSON.stringify(read.errors)).toBeUndefined();
      const tokens = new Set(reads.map((r) => r.data.installationCredentials.accessToken as string));
      expect(tokens.size, `round ${round}`).toBe(1);
      expect(world.atlassian.isAccessTokenValid([...tokens][0]!)).toBe(true);
      expect(world.atlassian.refreshCount, `round ${round}`).toBe(round);
      expect(world.atlassian.refreshTokenReuseCount, `round ${round}`).toBe(0);
    }
    const status = await a.gql(INSTALLATION, { id }, { token: tenant.tokens.viewer });
    expect(status.data.installation.status).toBe("active");
  });
});
