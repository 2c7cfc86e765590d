import { createClient, type Client } from "graphql-ws";
import { sql } from "kysely";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { withPlatform, withTenant } from "../../src/store/db.ts";
import { enroll } from "../testkit/fixtures.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Per-tier request limits, the burst cap, per-principal and per-address limits, the cost budget,
// the RateLimit headers, and two Keyplanes sharing one database. Redis and real processes:
// test/e2e/rateLimits.test.ts.

const LIMITS_ON = { RATE_LIMITS: "on" };
/** Only the tier's minute quota decides: the burst cap and the per-principal limit out of the way. */
const TIER_ONLY = { ...LIMITS_ON, RATE_LIMIT_BURST_PER_10_SECONDS: "free:100000,pro:100000,enterprise:100000", RATE_LIMIT_PRINCIPAL_PER_MINUTE: "100000" };

const PING = "{ __typename }";

/** `count` requests, `parallel` at a time; their answers in order. */
async function flood(app: TestApp, token: string | undefined, count: number, parallel = 20, query = PING): Promise<GraphQLResponse[]> {
  const out: GraphQLResponse[] = [];
  for (let i = 0; i < count; i += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, () => app.gql(query, {}, { token })));
    out.push(...batch);
  }
  return out;
}
const accepted = (responses: GraphQLResponse[]) => responses.filter((r) => r.status === 200 && !r.errors).length;
const limited = (responses: GraphQLResponse[]) => responses.filter((r) => r.errors?.[0]?.extensions?.code === "RATE_LIMITED");

/** A structured-field list item of the RateLimit headers, by policy name. */
function item(header: string | null, policy: string): Record<string, string> | undefined {
  for (const part of (header ?? "").split(/,\s*/)) {
    const [name, ...params] = part.split(";");
    if (name !== `"${policy}"`) continue;
    return Object.fromEntries(params.map((p) => p.split("=") as [string, string]));
  }
  return undefined;
}

/** A graphql-ws client of `token`'s (connects on its first operation). */
function wsClient(app: TestApp, token: string): Client {
  return createClient({
    url: `${app.url.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
  });
}

type WsResult = { data?: unknown; errors?: Array<{ extensions?: Record<string, unknown> }> };
/** One `ticks(count: 1)` subscription over the socket: its last result, or its errors. */
function tickOnce(client: Client): Promise<WsResult> {
  return new Promise<WsResult>((resolve) => {
    let last: WsResult = {};
    client.subscribe(
      { query: "subscription { ticks(count: 1, intervalMs: 10) }" },
      {
        next: (v) => (last = v as WsResult),
        error: (e) => resolve({ errors: Array.isArray(e) ? e : [{ extensions: { message: String(e) } }] }),
        complete: () => resolve(last),
      },
    );
  });
}

describe("tier limits", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "limits-tiers", env: TIER_ONLY });
  });
  afterAll(() => app?.close());

  it.each([
    ["free", 60],
    ["pro", 300],
    ["enterprise", 1000],
  ] as const)("a %s tenant gets exactly %i requests a minute; the next answer is 429 RATE_LIMITED with retryAfter", async (tier, quota) => {
    const t = await app.seedTenant({ tier });
    const responses = await flood(app, t.tokens.viewer, quota + 5, 25);
    expect(accepted(responses)).toBe(quota);
    const refused = limited(responses);
    expect(refused).toHaveLength(5);
    expect(refused[0]!.status).toBe(429);
    expect(refused[0]!.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "tenant", retryAfter: expect.any(Number) });
    expect(refused[0]!.errors![0]!.extensions!.retryAfter).toBeGreaterThan(0);
    expect(refused[0]!.errors![0]!.extensions!.retryAfter).toBeLessThanOrEqual(60);
    expect(refused[0]!.headers.get("retry-after")).toBe(String(refused[0]!.errors![0]!.extensions!.retryAfter));
  });

  it("a tier change applies to the tenant's next request", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const responses = await flood(app, t.tokens.viewer, 61);
    expect(accepted(responses)).toBe(60);
    expect((await app.gql(PING, {}, { token: t.tokens.viewer })).status).toBe(429);
    const platform = await app.platformToken();
    const changed = await app.gql("mutation ($id: ID!) { changeTenantTier(id: $id, tier: pro) { tier } }", { id: t.tenantId }, { token: platform });
    expect(changed.errors).toBeUndefined();
    expect(changed.data.changeTenantTier.tier).toBe("pro");
    const next = await app.gql(PING, {}, { token: t.tokens.viewer });
    expect(next.status).toBe(200);
    // The same window goes on: 63 counted (62 before the change), 300 allowed now.
    expect(item(next.headers.get("ratelimit-policy"), "tenant")).toMatchObject({ q: "300", w: "60" });
    expect(item(next.headers.get("ratelimit"), "tenant")).toMatchObject({ r: "237" });
    // Back down: refused again at once.
    await app.gql("mutation ($id: ID!) { changeTenantTier(id: $id, tier: free) { tier } }", { id: t.tenantId }, { token: platform });
    expect((await app.gql(PING, {}, { token: t.tokens.viewer })).status).toBe(429);
  });

  it("one tenant's exhaustion does not limit another", async () => {
    const a = await app.seedTenant({ tier: "free" });
    const b = await app.seedTenant({ tier: "free" });
    expect(accepted(await flood(app, a.tokens.viewer, 65))).toBe(60);
    const other = await app.gql("{ me { tenantId } }", {}, { token: b.tokens.viewer });
    expect(other.status).toBe(200);
    expect(other.data.me.tenantId).toBe(b.tenantId);
    expect(item(other.headers.get("ratelimit"), "tenant")).toMatchObject({ r: "59" });
  });

  it("records a sampled access.denied event (reason rate-limit:tenant) and counts the refusals in /metrics", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const responses = await flood(app, t.tokens.viewer, 70);
    expect(limited(responses)).toHaveLength(10);
    const events = await withTenant(app.kp.deps.db, t.tenantId, (trx) =>
      trx.selectFrom("events").select(["event_type", "data"]).where("tenant_id", "=", t.tenantId).where("event_type", "=", "access.denied").execute(),
    );
    // Ten refusals within the minute: one event (the sampler folds the rest).
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ reason: "rate-limit:tenant", details: { policy: "tenant", limit: 60 } });
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(/keyplane_rate_limit_rejections_total\{policy="tenant"\} \d+/);
  });
});

describe("tenantUsage: what a tenant has used of its tier", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "limits-usage", env: TIER_ONLY });
  });
  afterAll(() => app?.close());

  const USAGE = `{ tenantUsage { tier requestLimitsEnforced requests { used limit windowSeconds resetSeconds } cost { used limit }
    agentCreations { used limit windowSeconds } agentUpdates { used limit windowSeconds } } }`;

  it("counts the minute's requests and cost and the day's agent creations, of this tenant only, without counting itself twice", async () => {
    const t = await app.seedTenant({ tier: "pro" });
    const other = await app.seedTenant({ tier: "free" });
    await flood(app, t.tokens.viewer, 7);
    for (const name of ["usage-a", "usage-b"]) {
      const created = await app.gql(`mutation { createAgent(input: { name: "${name}", type: "bot" }) { id } }`, {}, { token: t.tokens.editor });
      expect(created.errors).toBeUndefined();
    }
    const res = await app.gql(USAGE, {}, { token: t.tokens.viewer });
    expect(res.errors).toBeUndefined();
    const usage = res.data.tenantUsage;
    expect(usage).toMatchObject({ tier: "pro", requestLimitsEnforced: true });
    // 7 pings, 2 creations, and this query itself.
    expect(usage.requests).toMatchObject({ used: 10, limit: 300, windowSeconds: 60 });
    expect(usage.requests.resetSeconds).toBeGreaterThan(0);
    expect(usage.cost.used).toBeGreaterThan(0);
    expect(usage.cost.limit).toBe(15000);
    expect(usage.agentCreations).toEqual({ used: 2, limit: expect.any(Number), windowSeconds: 86400 });
    expect(usage.agentUpdates).toEqual({ used: 0, limit: expect.any(Number), windowSeconds: 3600 });

    // Another tenant's usage is its own: only its own query so far.
    const theirs = await app.gql(USAGE, {}, { token: other.tokens.viewer });
    expect(theirs.data.tenantUsage).toMatchObject({ tier: "free", requests: { used: 1, limit: 60 }, agentCreations: { used: 0 } });
  });
});

describe("per-principal and burst limits", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "limits-burst", env: LIMITS_ON });
  });
  afterAll(() => app?.close());

  it("a principal gets 100 requests a minute; another principal of the tenant still gets through", async () => {
    const appNoBurst = await createTestApp({
      name: "limits-principal",
      database: app.database,
      env: { ...LIMITS_ON, RATE_LIMIT_BURST_PER_10_SECONDS: "enterprise:100000" },
    });
    try {
      const t = await appNoBurst.seedTenant({ tier: "enterprise" });
      const responses = await flood(appNoBurst, t.tokens.viewer, 105, 25);
      expect(accepted(responses)).toBe(100);
      expect(limited(responses)[0]!.errors![0]!.extensions).toMatchObject({ policy: "principal" });
      expect((await appNoBurst.gql(PING, {}, { token: t.tokens.editor })).status).toBe(200);
    } finally {
      await appNoBurst.close();
    }
  });

  it("caps bursts per ten seconds (free: 17), and a request the burst cap refuses does not use the minute's quota", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const responses = await Promise.all(Array.from({ length: 40 }, () => app.gql(PING, {}, { token: t.tokens.viewer })));
    const ok = responses.filter((r) => r.status === 200);
    const refused = limited(responses);
    // 40 requests at once fall in one ten-second window (17 admitted) or, rarely, straddle two (at most 34).
    expect(ok.length).toBeGreaterThanOrEqual(17);
    expect(ok.length === 17 || ok.length === 34 || (ok.length > 17 && ok.length < 34)).toBe(true);
    expect(refused).toHaveLength(40 - ok.length);
    const retryAfter = refused[0]!.errors![0]!.extensions!.retryAfter as number;
    expect(refused[0]!.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "tenant-burst" });
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(10);
    expect(refused[0]!.headers.get("retry-after")).toBe(String(retryAfter));
    // Only the admitted requests counted against the minute.
    const remaining = Math.min(...ok.map((r) => Number(item(r.headers.get("ratelimit"), "tenant")!.r)));
    expect(remaining).toBe(60 - ok.length);
  });

  it("defaults: limits on in production only; the burst caps keep any 60-second span under twice the quota", async () => {
    const { loadConfig } = await import("../../src/config.ts");
    const limits = loadConfig({}).limits;
    expect(limits.enabled).toBe(false);
    expect(loadConfig({ NODE_ENV: "production" }).limits.enabled).toBe(true);
    for (const tier of ["free", "pro", "enterprise"] as const) {
      expect(7 * limits.burstPer10Seconds[tier]).toBeLessThan(2 * limits.requestsPerMinute[tier]);
    }
    expect(limits.burstPer10Seconds).toEqual({ free: 17, pro: 85, enterprise: 285 });
  });

  it("every answer carries RateLimit-Policy and RateLimit for each policy that counted it", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const res = await app.gql("{ me { subject } }", {}, { token: t.tokens.viewer });
    expect(res.status).toBe(200);
    const policy = res.headers.get("ratelimit-policy")!;
    expect(policy).toContain('"tenant";q=60;w=60');
    expect(policy).toContain('"tenant-burst";q=17;w=10');
    expect(policy).toContain('"principal";q=100;w=60');
    expect(policy).toContain('"cost";q=3000;w=60;keyplane-unit="query-cost"');
    expect(res.headers.get("ratelimit")).toMatch(/^"tenant";r=59;t=\d+, "tenant-burst";r=16;t=\d+, "principal";r=99;t=\d+, "cost";r=2999;t=\d+$/);
    expect(res.headers.get("retry-after")).toBeNull();
    // A document GraphQL refuses is still a counted request, with its headers (the second of the
    // tenant's 17 in ten seconds: no burst window to wait for).
    const bad = await app.gql("{ nope }", {}, { token: t.tokens.viewer });
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(item(bad.headers.get("ratelimit"), "tenant")).toMatchObject({ r: "58" });
  });

  it("unauthenticated operations are limited per source address", async () => {
    const anon = await createTestApp({ name: "limits-anon", database: app.database, env: { ...LIMITS_ON, RATE_LIMIT_ANONYMOUS_PER_MINUTE: "3" } });
    try {
      const responses = await flood(anon, undefined, 5, 1);
      expect(accepted(responses)).toBe(3);
      expect(limited(responses)[0]!.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "anonymous" });
      expect(item(responses[0]!.headers.get("ratelimit-policy"), "anonymous")).toMatchObject({ q: "3", w: "60" });
    } finally {
      await anon.close();
    }
  });

  it("refused credentials are counted per address and answered 429 past the limit, but never lock out a valid token from that address", async () => {
    const guarded = await createTestApp({ name: "limits-authfail", database: app.database, env: { ...LIMITS_ON, RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "30" } });
    try {
      // Two tenants' clients behind one address (a NAT, an unlisted proxy): one sends bad tokens.
      const victim = await guarded.seedTenant({ tier: "enterprise" });
      const other = await guarded.seedTenant({ tier: "enterprise" });
      const bad = Array.from({ length: 35 }, (_, i) => `not-a-token-${i}`);
      const refusals: GraphQLResponse[] = [];
      for (const token of bad) refusals.push(await guarded.gql(PING, {}, { token }));
      // The first 30 are refused as what they are; from the 31st the address's refused credentials get 429.
      expect(refusals.slice(0, 30).map((r) => r.errors?.[0]?.extensions?.code)).toEqual(Array(30).fill("UNAUTHENTICATED"));
      for (const r of refusals.slice(30)) {
        expect(r.status).toBe(429);
        expect(r.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "auth-failures", retryAfter: expect.any(Number) });
        expect(r.headers.get("retry-after")).toBe(String(r.errors![0]!.extensions!.retryAfter));
      }

      // A valid token from the same address, of another tenant or of the same one, is answered.
      for (const token of [victim.tokens.viewer, other.tokens.admin]) {
        const res = await guarded.gql("{ me { tenantId } }", {}, { token });
        expect(res.status, JSON.stringify(res.errors)).toBe(200);
        expect(res.errors).toBeUndefined();
      }
      // A request that needs no token is not refused for them either (the anonymous policy counts it).
      expect((await guarded.gql(PING)).status).toBe(200);
      // Nor is a machine enrolling with a valid key; a refused key is answered for the limit.
      const made = await guarded.gql("mutation { createEnrollmentKey(input: {}) { key } }", {}, { token: victim.tokens.admin });
      const key = made.data.createEnrollmentKey.key as string;
      registerSecret(key);
      const enroll = (k: string) =>
        guarded.gql("mutation ($input: EnrollAgentInput!) { enrollAgent(input: $input) { tenantId accessToken refreshToken } }", {
          input: { key: k, hostname: "nat-host", os: "linux", arch: "x64", agentVersion: "1" },
        });
      const enrolled = await enroll(key);
      expect(enrolled.errors, JSON.stringify(enrolled.errors)).toBeUndefined();
      registerSecret(enrolled.data.enrollAgent.accessToken);
      registerSecret(enrolled.data.enrollAgent.refreshToken);
      expect(enrolled.data.enrollAgent.tenantId).toBe(victim.tenantId);
      expect((await enroll(key)).errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "auth-failures" });
      // Still blocked for refused credentials: one more bad token is 429 at once.
      expect((await guarded.gql(PING, {}, { token: "still-not-a-token" })).status).toBe(429);

      // Over WebSocket alike: a valid token's socket is acknowledged, a refused one is closed with 4029.
      const open = (authorization: string) =>
        new Promise<{ acked: boolean; code?: number; reason?: string }>((resolve) => {
          const socket = new WebSocket(`${guarded.url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
          socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: { authorization } })));
          socket.on("message", (data) => {
            if (JSON.parse(String(data)).type === "connection_ack") {
              resolve({ acked: true });
              socket.close();
            }
          });
          socket.on("close", (code, reason) => resolve({ acked: false, code, reason: String(reason) }));
        });
      expect(await open(`Bearer ${other.tokens.viewer}`)).toEqual({ acked: true });
      expect(await open("Bearer not-a-token")).toEqual({ acked: false, code: 4029, reason: "Too many failed authentications" });

      // Recorded in the platform log, sampled (no secret in them): the failures and the refusal for the limit.
      const platform = await withPlatform(guarded.kp.deps.db, (trx) =>
        trx
          .selectFrom("events")
          .select(["event_type", "data"])
          .where("tenant_id", "=", PLATFORM_TENANT)
          .where("event_type", "in", ["auth.failed", "access.denied"])
          .execute(),
      );
      expect(platform.some((e) => e.event_type === "auth.failed" && (e.data as any).reason === "malformed")).toBe(true);
      expect(platform.filter((e) => e.event_type === "access.denied" && (e.data as any).reason === "rate-limit:auth-failures")).toEqual([
        expect.objectContaining({ data: expect.objectContaining({ details: expect.objectContaining({ policy: "auth-failures", limit: 30 }) }) }),
      ]);
      expect(JSON.stringify(platform)).not.toContain("not-a-token");
      // Nothing of the tokens in the tenants' own logs (the used key's refusal is its tenant's).
      const securityEvents = (t: SeededTenant) =>
        withTenant(guarded.kp.deps.db, t.tenantId, (trx) =>
          trx
            .selectFrom("events")
            .select(["event_type", "data"])
            .where("tenant_id", "=", t.tenantId)
            .where("event_type", "in", ["auth.failed", "access.denied"])
            .execute(),
        );
      expect(await securityEvents(other)).toEqual([]);
      expect((await securityEvents(victim)).map((e) => [e.event_type, (e.data as any).reason])).toEqual([["auth.failed", "enrollment-key-used-up"]]);
    } finally {
      await guarded.close();
    }
  });

  it("webhooks and OAuth redirects are limited per source address: 429 with Retry-After and RateLimit headers", async () => {
    const hooks = await createTestApp({
      name: "limits-webhooks",
      database: app.database,
      env: { ...LIMITS_ON, RATE_LIMIT_WEBHOOKS_PER_MINUTE: "2", RATE_LIMIT_OAUTH_PER_MINUTE: "1" },
    });
    try {
      const post = () =>
        fetch(`${hooks.url}/webhooks/github`, { method: "POST", headers: { "content-type": "application/json", "x-github-event": "ping" }, body: "{}" });
      const first = await post();
      expect(first.status).not.toBe(429);
      expect(item(first.headers.get("ratelimit"), "webhooks")).toMatchObject({ r: "1" });
      await post();
      const third = await post();
      expect(third.status).toBe(429);
      expect(third.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(await third.json()).toMatchObject({ error: { code: "RATE_LIMITED", policy: "webhooks", retryAfter: expect.any(Number) } });
      const callback = () => fetch(`${hooks.url}/oauth/callback/slack?state=x&code=y`, { redirect: "manual" });
      expect((await callback()).status).not.toBe(429);
      expect((await callback()).status).toBe(429);
    } finally {
      await hooks.close();
    }
  });
});

describe("per-agent limits (RATE_LIMIT_AGENT_PER_MINUTE)", () => {
  let app: TestApp;
  beforeAll(async () => {
    // The tenants' minute and the principal limit well above the agents' budgets: only the agent policy refuses.
    app = await createTestApp({ name: "limits-agents", env: { ...TIER_ONLY, RATE_LIMIT_AGENT_PER_MINUTE: "free:5,pro:7" } });
  });
  afterAll(() => app?.close());

  const deniedEvents = (tenantId: string) =>
    withTenant(app.kp.deps.db, tenantId, (trx) =>
      trx.selectFrom("events").select("data").where("tenant_id", "=", tenantId).where("event_type", "=", "access.denied").execute(),
    );

  it("an agent of a free tenant gets exactly 5 requests a minute, then 429 RATE_LIMITED (policy agent) with Retry-After; recorded and counted", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const agent = await enroll(app, t);
    const responses = await flood(app, agent.accessToken, 8, 1);
    expect(accepted(responses)).toBe(5);
    expect(responses.slice(0, 5).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(item(responses[0]!.headers.get("ratelimit-policy"), "agent")).toEqual({ q: "5", w: "60" });
    expect(item(responses[0]!.headers.get("ratelimit"), "agent")).toMatchObject({ r: "4" });
    expect(item(responses[4]!.headers.get("ratelimit"), "agent")).toMatchObject({ r: "0" });
    // The agent is a principal too: its principal item goes on beside it.
    expect(item(responses[0]!.headers.get("ratelimit-policy"), "principal")).toEqual({ q: "100000", w: "60" });

    const refused = limited(responses);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(r.status).toBe(429);
      const extensions = r.errors![0]!.extensions!;
      expect(extensions).toMatchObject({ code: "RATE_LIMITED", policy: "agent", limit: 5, retryAfter: expect.any(Number) });
      expect(extensions.retryAfter).toBeGreaterThan(0);
      expect(extensions.retryAfter).toBeLessThanOrEqual(60);
      expect(r.headers.get("retry-after")).toBe(String(extensions.retryAfter));
      expect(item(r.headers.get("ratelimit"), "agent")).toMatchObject({ r: "0" });
    }
    expect(refused[0]!.errors![0]!.message).toContain("this agent's requests per minute are used up");

    // Sampled: at least one access.denied of the tenant names the agent policy.
    const denied = (await deniedEvents(t.tenantId)).map((e) => e.data as Record<string, any>);
    expect(denied.filter((d) => d.reason === "rate-limit:agent").length).toBeGreaterThanOrEqual(1);
    expect(denied.find((d) => d.reason === "rate-limit:agent")).toMatchObject({ details: { policy: "agent", limit: 5, windowSeconds: 60 } });
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    const counted = /keyplane_rate_limit_rejections_total\{policy="agent"\} (\d+)/.exec(metrics);
    expect(Number(counted?.[1])).toBeGreaterThanOrEqual(3);
  });

  it("each agent has its own budget, and the tenant's users and services are not counted by the agent policy", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const first = await enroll(app, t);
    const second = await enroll(app, t);
    expect(accepted(await flood(app, first.accessToken, 6, 1))).toBe(5);

    const other = await app.gql(PING, {}, { token: second.accessToken });
    expect(other.status).toBe(200);
    expect(item(other.headers.get("ratelimit"), "agent")).toMatchObject({ r: "4" });

    // More requests than any agent's budget, from the tenant's service token and a user: all answered, with no agent item.
    const service = await flood(app, t.tokens.service, 8, 1);
    expect(accepted(service)).toBe(8);
    const viewer = await app.gql(PING, {}, { token: t.tokens.viewer });
    expect(viewer.status).toBe(200);
    for (const r of [...service, viewer]) {
      expect(item(r.headers.get("ratelimit-policy"), "agent")).toBeUndefined();
      expect(item(r.headers.get("ratelimit-policy"), "principal")).toBeDefined();
    }
    // The first agent is still refused.
    expect((await app.gql(PING, {}, { token: first.accessToken })).errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "agent" });
  });

  it("an agent of a pro tenant gets the pro figure (7)", async () => {
    const t = await app.seedTenant({ tier: "pro" });
    const agent = await enroll(app, t);
    const responses = await flood(app, agent.accessToken, 10, 1);
    expect(accepted(responses)).toBe(7);
    expect(limited(responses)).toHaveLength(3);
    expect(limited(responses)[0]!.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "agent", limit: 7 });
    expect(item(responses[0]!.headers.get("ratelimit-policy"), "agent")).toEqual({ q: "7", w: "60" });
  });

  it("an agent's graphql-ws operations count against its budget and are refused alike", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const agent = await enroll(app, t);
    expect(accepted(await flood(app, agent.accessToken, 4, 1))).toBe(4);
    const client = wsClient(app, agent.accessToken);
    try {
      expect(await tickOnce(client)).toEqual({ data: { ticks: 1 } });
      expect((await tickOnce(client)).errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "agent", limit: 5 });
    } finally {
      await client.dispose();
    }
    // And the socket's operations were the HTTP requests' count: the agent is refused over HTTP too.
    expect((await app.gql(PING, {}, { token: agent.accessToken })).status).toBe(429);
  });

  it("RATE_LIMIT_AGENT_PER_MINUTE: 100 for every tier by default, tiers left out keep it, and a malformed value stops start-up", async () => {
    const { loadConfig } = await import("../../src/config.ts");
    expect(loadConfig({}).limits.agentPerMinute).toEqual({ free: 100, pro: 100, enterprise: 100 });
    expect(loadConfig({ RATE_LIMIT_AGENT_PER_MINUTE: "free:5,pro:7" }).limits.agentPerMinute).toEqual({ free: 5, pro: 7, enterprise: 100 });
    expect(() => loadConfig({ RATE_LIMIT_AGENT_PER_MINUTE: "free:0" })).toThrow(/RATE_LIMIT_AGENT_PER_MINUTE/);
    expect(() => loadConfig({ RATE_LIMIT_AGENT_PER_MINUTE: "gold:5" })).toThrow(/RATE_LIMIT_AGENT_PER_MINUTE/);
  });
});

describe("query cost budget", () => {
  let app: TestApp;
  let t: SeededTenant;
  beforeAll(async () => {
    app = await createTestApp({ name: "limits-cost", env: { ...TIER_ONLY, RATE_LIMIT_COST_PER_MINUTE: "free:250" } });
    t = await app.seedTenant({ tier: "free" });
  });
  afterAll(() => app?.close());

  it("charges each operation's cost to the tenant's budget of the minute and reports it in extensions.cost", async () => {
    const query = "{ agents(first: 100) { nodes { id } } }"; // 1 connection + 100 agents
    const first = await app.gql(query, {}, { token: t.tokens.viewer });
    expect(first.errors).toBeUndefined();
    const ext = (await (
      await fetch(`${app.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${t.tokens.viewer}` },
        body: JSON.stringify({ query }),
      })
    ).json()) as {
      extensions: { cost: Record<string, number> };
    };
    expect(ext.extensions.cost).toMatchObject({ requested: 101, maximum: 1000, budget: 250, remaining: 48 });
    const third = await app.gql(query, {}, { token: t.tokens.viewer });
    expect(third.status).toBe(429);
    expect(third.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "cost", retryAfter: expect.any(Number) });
    // Cheap operations still fit in what is left.
    expect((await app.gql("{ me { subject } }", {}, { token: t.tokens.viewer })).status).toBe(200);
  });

  it("another tenant's budget is its own", async () => {
    const other = await app.seedTenant({ tier: "free" });
    const res = await app.gql("{ agents(first: 100) { nodes { id } } }", {}, { token: other.tokens.viewer });
    expect(res.status).toBe(200);
    expect(item(res.headers.get("ratelimit"), "cost")).toMatchObject({ r: "149" });
  });
});

describe("audit exports", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "limits-exports", env: { ...TIER_ONLY, RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR: "2" } });
  });
  afterAll(() => app?.close());

  const exportOf = (token: string) => fetch(`${app.url}/audit/export`, { headers: { authorization: `Bearer ${token}` } });
  const exportsRecorded = (tenantId: string) =>
    withTenant(app.kp.deps.db, tenantId, (trx) =>
      trx.selectFrom("events").select("tenant_seq").where("tenant_id", "=", tenantId).where("event_type", "=", "audit.exported").execute(),
    );

  it("a tenant gets RATE_LIMIT_AUDIT_EXPORTS_PER_HOUR exports an hour; the next is 429 with Retry-After, and is not recorded as an export", async () => {
    const t = await app.seedTenant({ tier: "enterprise" });
    for (let i = 0; i < 2; i++) {
      const res = await exportOf(t.tokens.admin);
      expect(res.status).toBe(200);
      expect(item(res.headers.get("ratelimit"), "audit-export")).toEqual({ r: String(1 - i), t: expect.any(String) });
      expect(item(res.headers.get("ratelimit-policy"), "audit-export")).toEqual({ q: "2", w: "3600" });
      await res.text();
    }
    const refused = await exportOf(t.tokens.admin);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(3600);
    expect(await refused.json()).toMatchObject({ error: { code: "RATE_LIMITED", policy: "audit-export", retryAfter: expect.any(Number) } });
    expect(await exportsRecorded(t.tenantId)).toHaveLength(2);
    // Another tenant's exports are counted apart.
    const other = await app.seedTenant();
    const res = await exportOf(other.tokens.admin);
    expect(res.status).toBe(200);
    await res.text();
  });
});

describe("two Keyplanes on one database (RATE_LIMIT_STORE=database)", () => {
  let one: TestApp;
  let two: TestApp;
  beforeAll(async () => {
    // A patient store timeout: this is about sharing, and a loaded machine must not send counts to
    // the per-process insurance limiter (that path has a test of its own, test/e2e/rateLimits.test.ts).
    const env = { ...TIER_ONLY, RATE_LIMIT_STORE: "database", RATE_LIMIT_STORE_TIMEOUT_MS: "30000" };
    one = await createTestApp({ name: "limits-db-1", env });
    two = await createTestApp({ name: "limits-db-2", database: one.database, env });
  });
  afterAll(async () => {
    await two?.close();
    await one?.close();
  });

  it("accept together exactly the tier's quota per window", async () => {
    const t = await one.seedTenant({ tier: "free" });
    // Each test app signs with a key of its own: the second process gets a token it can verify.
    const second = await two.mintToken({ tenantId: t.tenantId, roles: ["viewer"], subject: "viewer-2" });
    const responses = (await Promise.all([flood(one, t.tokens.viewer, 45, 15), flood(two, second, 45, 15)])).flat();
    expect(accepted(responses)).toBe(60);
    expect(limited(responses)).toHaveLength(30);
    const rows = await sql<{ key: string; points: number }>`select key, points from rate_limits where key = ${`kp:tenant:${t.tenantId}`}`.execute(
      one.kp.deps.db,
    );
    expect(Number(rows.rows[0]!.points)).toBe(90);
  });

  it("count an address's refused credentials together, and both still answer its valid tokens", async () => {
    const t = await one.seedTenant({ tier: "enterprise" });
    const second = await two.mintToken({ tenantId: t.tenantId, roles: ["viewer"], subject: "viewer-2" });
    // 30 refused tokens, half on each process: the next one is refused for the limit by either.
    for (let i = 0; i < 30; i++) expect((await (i % 2 ? two : one).gql(PING, {}, { token: `bad-${i}` })).status).toBe(401);
    expect((await two.gql(PING, {}, { token: "bad-30" })).errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "auth-failures" });
    expect((await one.gql(PING, {}, { token: "bad-31" })).status).toBe(429);
    expect((await one.gql(PING, {}, { token: t.tokens.viewer })).status).toBe(200);
    expect((await two.gql(PING, {}, { token: second })).status).toBe(200);
  });
});

describe("graphql-ws operations", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "limits-ws", env: TIER_ONLY });
  });
  afterAll(() => app?.close());

  it("count as requests of the tenant and are refused with RATE_LIMITED once its quota is used", async () => {
    const t = await app.seedTenant({ tier: "free" });
    expect(accepted(await flood(app, t.tokens.viewer, 59))).toBe(59);
    const client = wsClient(app, t.tokens.viewer);
    const once = () => tickOnce(client);
    try {
      expect(await once()).toEqual({ data: { ticks: 1 } });
      const refused = await once();
      expect(refused.errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", policy: "tenant" });
    } finally {
      await client.dispose();
    }
  });
});
