import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/graphql/pagination.ts";
import { subscribeEvents, type EventSubscriber } from "../testkit/eventSubscriber.ts";
import { createEnrollmentKey, enrollWithKey } from "../testkit/fixtures.ts";
import { startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// A platform operator suspends a tenant: every credential of that tenant is refused with
// TENANT_SUSPENDED (tokens, sessions, enrollment keys, an install under way), its open sockets end,
// other tenants see nothing change, and resuming gives the same tokens back their use.

let world: ProviderWorld;
let app: TestApp;
let operator: string;
const open: EventSubscriber[] = [];

beforeAll(async () => {
  world = await startProviderWorld();
  app = await createTestApp({ env: { ...world.env, WS_TOKEN_CHECK_SECONDS: "1" }, name: "tenant-suspension" });
  operator = await app.platformToken();
});
afterAll(async () => {
  await Promise.all(open.map((s) => s.dispose()));
  await app?.close();
  await world?.close();
});

const SUSPEND = `mutation ($id: ID!, $reason: String!) { suspendTenant(id: $id, reason: $reason) { id status suspendedAt suspensionReason } }`;
const RESUME = `mutation ($id: ID!) { resumeTenant(id: $id) { id status suspendedAt suspensionReason } }`;
const WHO = `{ me { subject } tenant { id status } }`;

async function tenantLog(t: SeededTenant): Promise<{ type: string; actor: string; data: Record<string, unknown> }[]> {
  const res = await app.gql(`{ auditLog(first: 100) { nodes { type actor data } } }`, {}, { token: t.tokens.admin });
  expect(res.errors).toBeUndefined();
  return res.data.auditLog.nodes;
}

const codeOf = (res: { errors?: { extensions?: Record<string, unknown> }[] }) => res.errors?.[0]?.extensions?.code;

/** Follows redirects as a browser would, without credentials, until an answer that is not one. */
async function follow(url: string): Promise<{ status: number; body: any }> {
  for (let hop = 0; hop < 6; hop++) {
    const res = await fetch(url, { redirect: "manual" });
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      url = new URL(location, url).toString();
      continue;
    }
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: text };
    }
  }
  throw new Error(`no answer after redirects from ${url}`);
}

describe("suspending a tenant", () => {
  it("refuses its tokens, sessions, keys and an install under way with TENANT_SUSPENDED, ends its sockets, leaves others untouched, and resumes", async () => {
    const a = await app.seedTenant();
    const b = await app.seedTenant();
    // Credentials of A made before the suspension: a session's refresh token, an enrollment key, an
    // install started, an open subscription.
    const session = await app.gql(`mutation { startSession { refreshToken } }`, {}, { token: a.tokens.admin });
    const refreshToken = session.data.startSession.refreshToken as string;
    registerSecret(refreshToken);
    const key = await createEnrollmentKey(app, a);
    const started = await app.gql(`mutation { startInstallation(platform: slack) { authorizationUrl } }`, {}, { token: a.tokens.editor });
    expect(started.errors).toBeUndefined();
    const subscriber = subscribeEvents(app.url, a.tokens.service, { after: encodeCursor("seq", 0) });
    open.push(subscriber);
    await subscriber.until((events) => events.length > 0);

    const suspended = await app.gql(SUSPEND, { id: a.tenantId, reason: "unpaid invoice" }, { token: operator });
    expect(suspended.errors).toBeUndefined();
    expect(suspended.data.suspendTenant).toMatchObject({ id: a.tenantId, status: "suspended", suspensionReason: "unpaid invoice" });
    expect(suspended.data.suspendTenant.suspendedAt).toEqual(expect.any(String));

    // Every token of A, whatever its role, answers 403 TENANT_SUSPENDED in words.
    for (const token of Object.values(a.tokens)) {
      const refused = await app.gql(WHO, {}, { token });
      expect(refused.status).toBe(403);
      expect(refused.errors?.[0]).toMatchObject({ message: expect.stringMatching(/suspended/), extensions: { code: "TENANT_SUSPENDED" } });
      expect(refused.data ?? null).toBeNull();
    }
    expect(codeOf(await app.gql(`mutation ($t: String!) { refreshSession(refreshToken: $t) { accessToken } }`, { t: refreshToken }))).toBe("TENANT_SUSPENDED");
    const enrolled = await enrollWithKey(app, key.key);
    expect(codeOf(enrolled)).toBe("TENANT_SUSPENDED");
    const callback = await follow(started.data.startInstallation.authorizationUrl);
    expect(callback.status).toBe(403);
    expect(callback.body.error.code).toBe("TENANT_SUSPENDED");
    // The open socket ends; a new one is refused.
    await subscriber.ended;
    expect(subscriber.close).toEqual({ code: 4403, reason: "Tenant suspended" });
    const late = subscribeEvents(app.url, a.tokens.service, {});
    open.push(late);
    await late.ended;
    expect(late.close).toEqual({ code: 4403, reason: "Tenant suspended" });

    // B is untouched.
    const other = await app.gql(WHO, {}, { token: b.tokens.viewer });
    expect(other.data.tenant).toEqual({ id: b.tenantId, status: "active" });
    // The operator sees it suspended, with why.
    const listed = await app.gql(`{ tenants { id status suspensionReason } }`, {}, { token: operator });
    expect(listed.data.tenants).toEqual(
      expect.arrayContaining([
        { id: a.tenantId, status: "suspended", suspensionReason: "unpaid invoice" },
        { id: b.tenantId, status: "active", suspensionReason: null },
      ]),
    );

    const resumed = await app.gql(RESUME, { id: a.tenantId }, { token: operator });
    expect(resumed.data.resumeTenant).toEqual({ id: a.tenantId, status: "active", suspendedAt: null, suspensionReason: null });
    expect((await app.gql(WHO, {}, { token: a.tokens.viewer })).data.tenant).toEqual({ id: a.tenantId, status: "active" });
    // Nothing was stored while it was suspended: no agent, no installation; the key enrolls now.
    const agents = await app.gql(`{ agents(first: 10) { nodes { id } } installations(first: 10) { nodes { id } } }`, {}, { token: a.tokens.viewer });
    expect(agents.data).toEqual({ agents: { nodes: [] }, installations: { nodes: [] } });
    expect((await enrollWithKey(app, key.key)).errors).toBeUndefined();

    // A's log holds both changes, by the operator, and the refusals.
    const log = await tenantLog(a);
    expect(log.filter((e) => e.type === "tenant.suspended" || e.type === "tenant.resumed")).toEqual([
      { type: "tenant.suspended", actor: "operator", data: { tenantId: a.tenantId, reason: "unpaid invoice" } },
      { type: "tenant.resumed", actor: "operator", data: { tenantId: a.tenantId } },
    ]);
    // (Refusals from one address within a minute are folded into one event.)
    expect(log.some((e) => e.type === "auth.failed" && e.data.reason === "tenant-suspended")).toBe(true);
  });

  it("is the platform operators' alone; a second suspension records nothing; bad input and unknown tenants are refused", async () => {
    const a = await app.seedTenant();
    const b = await app.seedTenant();
    for (const token of [a.tokens.admin, b.tokens.admin, a.tokens.service]) {
      expect(codeOf(await app.gql(SUSPEND, { id: a.tenantId, reason: "mine" }, { token }))).toBe("FORBIDDEN");
      expect(codeOf(await app.gql(RESUME, { id: a.tenantId }, { token }))).toBe("FORBIDDEN");
    }
    expect((await app.gql(WHO, {}, { token: a.tokens.viewer })).data.tenant.status).toBe("active");

    const blank = await app.gql(SUSPEND, { id: a.tenantId, reason: "   " }, { token: operator });
    expect(blank.errors?.[0]).toMatchObject({ message: expect.stringMatching(/^reason: /), extensions: { code: "BAD_USER_INPUT", field: "reason" } });
    expect(codeOf(await app.gql(SUSPEND, { id: a.tenantId, reason: "x".repeat(501) }, { token: operator }))).toBe("BAD_USER_INPUT");
    expect(codeOf(await app.gql(SUSPEND, { id: "no-such-tenant", reason: "x" }, { token: operator }))).toBe("NOT_FOUND");
    expect(codeOf(await app.gql(RESUME, { id: "no-such-tenant" }, { token: operator }))).toBe("NOT_FOUND");

    expect((await app.gql(SUSPEND, { id: a.tenantId, reason: "first" }, { token: operator })).errors).toBeUndefined();
    const again = await app.gql(SUSPEND, { id: a.tenantId, reason: "second" }, { token: operator });
    expect(again.data.suspendTenant).toMatchObject({ status: "suspended", suspensionReason: "first" });
    expect((await app.gql(RESUME, { id: a.tenantId }, { token: operator })).errors).toBeUndefined();
    expect((await app.gql(RESUME, { id: a.tenantId }, { token: operator })).data.resumeTenant.status).toBe("active");
    const types = (await tenantLog(a)).map((e) => e.type).filter((t) => t.startsWith("tenant."));
    expect(types).toEqual(["tenant.created", "tenant.suspended", "tenant.resumed"]);
  });
});
