import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { withPlatform } from "../../src/store/db.ts";
import { createEnrollmentKey, enrollWithKey } from "../testkit/fixtures.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { testClock } from "../testkit/testClock.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Agents as dashboards and machines see them: the registry, one-time enrollment keys, the agent's
// own credential, liveness, and the tier quotas.

let app: TestApp;
// Liveness follows the clock: a test lets an agent's silence (AGENT_OFFLINE_AFTER, 1 s here) or an
// offline ephemeral agent's grace (1 s) pass by moving it on, not by sleeping.
const clock = testClock();
const PAST_ONE_SECOND = 1_100;
beforeAll(async () => {
  app = await createTestApp({
    name: "agents",
    now: clock.now,
    env: { AGENT_OFFLINE_AFTER: "1", AGENT_EPHEMERAL_GRACE_SECONDS: "1", ENROLL_ATTEMPTS_PER_MINUTE: "1000" },
  });
});
afterAll(() => app?.close());

const AGENT = "id name type version config tags status connection ephemeral host lastSeenAt";
const create = (t: SeededTenant, input: Record<string, unknown>, token = t.tokens.editor) =>
  app.gql(`mutation ($input: CreateAgentInput!) { createAgent(input: $input) { ${AGENT} } }`, { input }, { token });
const newKey = (t: SeededTenant, input: Record<string, unknown> = {}) => createEnrollmentKey(app, t, input);
const enroll = (key: string, hostname = "build-01", headers: Record<string, string> = {}) => enrollWithKey(app, key, { hostname, headers });
const log = async (t: SeededTenant, types: string[]) => {
  const res = await app.gql(
    "query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { edges { node { type data streamId } } } }",
    { types },
    { token: t.tokens.admin },
  );
  return res.data.auditLog.edges.map((e: any) => e.node);
};
/** Sweeps until the tenant's log holds `count` events of these types (a background sweep holding the sweep lock makes one skip). */
const sweepUntil = (what: string, t: SeededTenant, types: string[], count = 1) =>
  waitFor(what, async () => {
    await app.kp.agentSweeper.runOnce();
    return (await log(t, types)).length >= count;
  });
const eventCount = (tenantId: string) =>
  withPlatform(app.kp.deps.db, async (trx) =>
    Number((await sql<{ n: number }>`select count(*)::int as n from events where tenant_id = ${tenantId}`.execute(trx)).rows[0]!.n),
  );

describe("the agent registry", () => {
  it("creates, updates with a version check, publishes and deletes; each change is an event consumers can read", async () => {
    const t = await app.seedTenant();
    const created = await create(t, { name: "Support bot", type: "support-bot", config: { model: "x", replies: 3 }, tags: ["support", "eu"] }, t.tokens.editor);
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
    const agent = created.data.createAgent;
    expect(agent).toMatchObject({
      name: "Support bot",
      type: "support-bot",
      version: 1,
      status: "draft",
      connection: "pending",
      tags: ["eu", "support"],
      config: { model: "x", replies: 3 },
    });

    const update = (expectedVersion: number, patch: Record<string, unknown>) =>
      app.gql(
        "mutation ($input: UpdateAgentInput!) { updateAgent(input: $input) { version name config } }",
        { input: { id: agent.id, expectedVersion, ...patch } },
        { token: t.tokens.editor },
      );
    expect((await update(1, { name: "Support bot 2" })).data.updateAgent).toMatchObject({ version: 2, name: "Support bot 2" });
    const stale = await update(1, { name: "lost update" });
    expect(stale.errors?.[0]?.extensions).toMatchObject({ code: "CONFLICT", currentVersion: 2 });

    expect(
      (await app.gql("mutation ($id: ID!) { publishAgent(id: $id) { status version } }", { id: agent.id }, { token: t.tokens.editor })).errors?.[0]?.extensions
        ?.code,
    ).toBe("FORBIDDEN");
    expect(
      (await app.gql("mutation ($id: ID!) { publishAgent(id: $id) { status version } }", { id: agent.id }, { token: t.tokens.admin })).data.publishAgent,
    ).toEqual({ status: "published", version: 3 });

    const one = await app.gql(
      `query ($id: ID!) { agent(id: $id) { ${AGENT} history { type streamVersion data } } }`,
      { id: agent.id },
      { token: t.tokens.viewer },
    );
    expect(one.data.agent.history.map((e: any) => e.type)).toEqual(["agent.created", "agent.updated", "agent.published"]);
    expect(one.data.agent.history[1].data).toMatchObject({
      tenantId: t.tenantId,
      agentId: agent.id,
      agentName: "Support bot 2",
      version: 2,
      changed: ["name"],
      timestamp: expect.any(String),
      correlationId: expect.any(String),
    });

    expect((await app.gql("mutation ($id: ID!) { deleteAgent(id: $id) }", { id: agent.id }, { token: t.tokens.admin })).data.deleteAgent).toBe(true);
    expect((await app.gql("query ($id: ID!) { agent(id: $id) { id } }", { id: agent.id }, { token: t.tokens.viewer })).errors?.[0]?.extensions?.code).toBe(
      "NOT_FOUND",
    );
    expect((await app.gql("{ agents(first: 10) { nodes { id } } }", {}, { token: t.tokens.viewer })).data.agents.nodes).toEqual([]);
    expect((await log(t, ["agent.deleted"])).map((e: any) => e.streamId)).toEqual([agent.id]);
  });

  it("filters by status, type and tag; refuses bad input with the field named and stores nothing", async () => {
    const t = await app.seedTenant({ tier: "pro" });
    await create(t, { name: "a", type: "coder", tags: ["gpu"] });
    await create(t, { name: "b", type: "support-bot", tags: ["eu"] });
    const byTag = await app.gql('{ agents(first: 10, filter: { tag: "gpu" }) { nodes { name } } }', {}, { token: t.tokens.viewer });
    expect(byTag.data.agents.nodes).toEqual([{ name: "a" }]);
    const byType = await app.gql('{ agents(first: 10, filter: { type: "support-bot" }) { nodes { name } } }', {}, { token: t.tokens.viewer });
    expect(byType.data.agents.nodes).toEqual([{ name: "b" }]);
    const before = await eventCount(t.tenantId);
    for (const [input, field] of [
      [{ name: "", type: "x" }, "name"],
      [{ name: "x", type: "Not A Slug" }, "type"],
      [{ name: "x", type: "x", config: { blob: "y".repeat(70_000) } }, "config"],
      [{ name: "x", type: "x", tags: ["Bad Tag"] }, "tags"],
    ] as const) {
      const res = await create(t, input);
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(res.errors)).toBe("BAD_USER_INPUT");
      expect(String(res.errors?.[0]?.extensions?.field)).toContain(field);
    }
    expect(await eventCount(t.tenantId)).toBe(before);
  });
});

describe("enrollment", () => {
  it("a key is shown once (prefix and hash kept), enrolls a machine as a new agent, and the credential acts as that agent only", async () => {
    const t = await app.seedTenant();
    const key = await newKey(t, { description: "CI runners", tags: ["ci"] });
    expect(key.key).toMatch(/^kpe_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
    expect(key.key.startsWith(`kpe_${key.prefix}_`)).toBe(true);
    const listed = await app.gql("{ enrollmentKeys { id prefix description uses state tags } }", {}, { token: t.tokens.viewer });
    expect(listed.data.enrollmentKeys).toEqual([{ id: key.id, prefix: key.prefix, description: "CI runners", uses: 0, state: "active", tags: ["ci"] }]);
    expect(JSON.stringify(listed)).not.toContain(key.key);

    const res = await enroll(key.key, "runner-7");
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    const enrolled = res.data.enrollAgent;
    expect(enrolled.tenantId).toBe(t.tenantId);
    const agent = await app.gql(`query ($id: ID!) { agent(id: $id) { ${AGENT} } }`, { id: enrolled.agentId }, { token: t.tokens.viewer });
    expect(agent.data.agent).toMatchObject({
      name: "runner-7",
      tags: ["ci"],
      host: { hostname: "runner-7", os: "linux", arch: "x64", agentVersion: "1.0.0" },
      connection: "pending",
    });

    const me = await app.gql("{ me { subject kind roles permissions } }", {}, { token: enrolled.accessToken });
    expect(me.data.me).toMatchObject({ subject: `agent:${enrolled.agentId}`, kind: "agent", roles: ["service"] });
    expect([...me.data.me.permissions].sort()).toEqual(["agent:act", "github-token:issue", "github:operate", "identity:link", "identity:token"]);
    // An agent cannot manage the registry.
    expect((await create(t, { name: "x", type: "x" }, enrolled.accessToken)).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    // Its credential refreshes.
    const refreshed = await app.gql("mutation ($r: String!) { refreshSession(refreshToken: $r) { accessToken refreshToken } }", { r: enrolled.refreshToken });
    expect(refreshed.errors).toBeUndefined();
    registerSecret(refreshed.data.refreshSession.accessToken);
    registerSecret(refreshed.data.refreshSession.refreshToken);

    const events = await log(t, ["enrollment_key.created", "enrollment_key.used", "agent.created", "agent.enrolled"]);
    expect(events.map((e: any) => e.type)).toEqual(["enrollment_key.created", "enrollment_key.used", "agent.created", "agent.enrolled"]);
    expect(JSON.stringify(events)).not.toContain(key.key.slice(`kpe_${key.prefix}_`.length));
  });

  it("refuses unknown, malformed, revoked, expired and used keys with one message, stores nothing, and records the prefix only", async () => {
    const t = await app.seedTenant();
    const single = await newKey(t);
    expect((await enroll(single.key)).errors).toBeUndefined();
    const revoked = await newKey(t);
    await app.gql("mutation ($id: ID!) { revokeEnrollmentKey(id: $id) }", { id: revoked.id }, { token: t.tokens.admin });
    const forged = `kpe_${single.prefix}_${"A".repeat(43)}`;
    const before = await eventCount(t.tenantId);
    for (const key of [single.key, revoked.key, forged, "kpe_short_x", "not-a-key"]) {
      const res = await enroll(key);
      expect(res.errors?.[0]?.extensions?.code, key).toBe("UNAUTHENTICATED");
      expect(res.errors?.[0]?.message).toBe("invalid, expired or used enrollment key");
    }
    const failures = await log(t, ["auth.failed"]);
    expect(failures.map((e: any) => e.data.reason).sort()).toEqual(["enrollment-key-revoked", "enrollment-key-unknown", "enrollment-key-used-up"].sort());
    expect(failures.every((e: any) => e.data.details.keyPrefix === single.prefix || e.data.details.keyPrefix === revoked.prefix)).toBe(true);
    expect(JSON.stringify(failures)).not.toContain(single.key.slice(`kpe_${single.prefix}_`.length));
    // Only the security events were added.
    expect(await eventCount(t.tenantId)).toBe(before + failures.length);
    const platformFailures = await withPlatform(app.kp.deps.db, (trx) =>
      trx.selectFrom("events").select("data").where("tenant_id", "=", PLATFORM_TENANT).where("event_type", "=", "auth.failed").execute(),
    );
    expect(platformFailures.some((e) => (e.data as any).reason === "enrollment-key-malformed")).toBe(true);
  });

  it("two machines racing on a single-use key: exactly one enrolls", async () => {
    const t = await app.seedTenant();
    const key = await newKey(t);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => enroll(key.key, `racer-${i}`)));
    expect(results.filter((r) => r.data?.enrollAgent)).toHaveLength(1);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === "UNAUTHENTICATED")).toHaveLength(7);
    expect((await app.gql("{ agents(first: 20) { nodes { id } } }", {}, { token: t.tokens.viewer })).data.agents.nodes).toHaveLength(1);
  });

  it("machines racing on a reusable key all enroll while it has uses left; the rest are refused as used up", async () => {
    const t = await app.seedTenant({ tier: "enterprise" });
    const key = await newKey(t, { reusable: true, maxUses: 6 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => enroll(key.key, `fleet-${i}`)));
    expect(results.filter((r) => r.data?.enrollAgent)).toHaveLength(6);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === "UNAUTHENTICATED")).toHaveLength(2);
    expect((await app.gql("{ agents(first: 20) { nodes { id } } }", {}, { token: t.tokens.viewer })).data.agents.nodes).toHaveLength(6);
    expect((await app.gql("{ enrollmentKeys { uses state } }", {}, { token: t.tokens.admin })).data.enrollmentKeys).toEqual([{ uses: 6, state: "used_up" }]);
  });

  it("a reusable key enrolls up to maxUses; a key for an existing agent binds to it; used-up keys can be pruned", async () => {
    const t = await app.seedTenant({ tier: "pro" });
    const reusable = await newKey(t, { reusable: true, maxUses: 2 });
    expect((await enroll(reusable.key, "a")).errors).toBeUndefined();
    expect((await enroll(reusable.key, "b")).errors).toBeUndefined();
    expect((await enroll(reusable.key, "c")).errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    const existing = (await create(t, { name: "known", type: "coder" })).data.createAgent;
    const bound = await newKey(t, { agentId: existing.id, tags: ["bound"] });
    const res = await enroll(bound.key, "host-x");
    expect(res.data.enrollAgent.agentId).toBe(existing.id);
    const states = await app.gql("{ enrollmentKeys { id state uses } }", {}, { token: t.tokens.admin });
    expect(states.data.enrollmentKeys.map((k: any) => k.state).sort()).toEqual(["used_up", "used_up"]);
    expect((await app.gql("mutation { pruneEnrollmentKeys }", {}, { token: t.tokens.admin })).data.pruneEnrollmentKeys).toBe(2);
    expect((await app.gql("{ enrollmentKeys { id } }", {}, { token: t.tokens.admin })).data.enrollmentKeys).toEqual([]);
  });
});

describe("liveness", () => {
  it("heartbeats update last seen without an event per beat; silence makes the agent offline once, a beat brings it back once", async () => {
    const t = await app.seedTenant();
    const enrolled = (await enroll((await newKey(t)).key)).data.enrollAgent;
    const beat = () =>
      app.gql(
        'mutation { agentHeartbeat(input: { status: "ready", facts: { load: 0.1 } }) { agentId connection lastSeenAt } }',
        {},
        { token: enrolled.accessToken },
      );
    for (let i = 0; i < 3; i++) expect((await beat()).data.agentHeartbeat).toMatchObject({ agentId: enrolled.agentId, connection: "online" });
    expect((await log(t, ["agent.online"])).length).toBe(1);
    // Silent for AGENT_OFFLINE_AFTER (1 s in this suite): offline at a sweep; a further sweep records nothing more.
    clock.advance(PAST_ONE_SECOND);
    await sweepUntil("the agent to be swept offline", t, ["agent.offline"]);
    await app.kp.agentSweeper.runOnce();
    expect((await log(t, ["agent.offline"])).length).toBe(1);
    expect(
      (await app.gql("query ($id: ID!) { agent(id: $id) { connection lastSeenAt } }", { id: enrolled.agentId }, { token: t.tokens.viewer })).data.agent
        .connection,
    ).toBe("offline");
    await beat();
    expect((await log(t, ["agent.online", "agent.offline"])).map((e: any) => e.type)).toEqual(["agent.online", "agent.offline", "agent.online"]);
    // Only an agent beats: a service or admin token is refused.
    expect((await app.gql("mutation { agentHeartbeat(input: {}) { agentId } }", {}, { token: t.tokens.service })).errors?.[0]?.extensions?.code).toBe(
      "FORBIDDEN",
    );
  });
});

describe("ephemeral agents", () => {
  it("are deleted (reason ephemeral-expired) once offline past the grace period; others stay", async () => {
    const t = await app.seedTenant();
    const ephemeral = (await enroll((await newKey(t, { ephemeral: true })).key, "ci-job-1")).data.enrollAgent;
    const lasting = (await enroll((await newKey(t)).key, "server-1")).data.enrollAgent;
    for (const a of [ephemeral, lasting]) await app.gql("mutation { agentHeartbeat(input: {}) { agentId } }", {}, { token: a.accessToken });
    // Both go offline once silent for AGENT_OFFLINE_AFTER (1 s), then the ephemeral one is deleted
    // once offline for AGENT_EPHEMERAL_GRACE_SECONDS (1 s): sweep until each has happened.
    clock.advance(PAST_ONE_SECOND);
    await sweepUntil("both agents to be swept offline", t, ["agent.offline"], 2);
    clock.advance(PAST_ONE_SECOND);
    await sweepUntil("the ephemeral agent to be deleted past its grace", t, ["agent.deleted"]);
    const deleted = await log(t, ["agent.deleted"]);
    expect(deleted.map((e: any) => [e.streamId, e.data.reason])).toEqual([[ephemeral.agentId, "ephemeral-expired"]]);
    const left = await app.gql("{ agents(first: 10) { nodes { id connection } } }", {}, { token: t.tokens.viewer });
    expect(left.data.agents.nodes).toEqual([{ id: lasting.agentId, connection: "offline" }]);
  });
});

describe("tier quotas", () => {
  it("free tenants create 5 agents a day; the 6th is RATE_LIMITED with retryAfter, recorded, and appends nothing", async () => {
    const t = await app.seedTenant({ tier: "free" });
    for (let i = 0; i < 5; i++) expect((await create(t, { name: `a${i}`, type: "x" })).errors).toBeUndefined();
    const before = await eventCount(t.tenantId);
    const sixth = await create(t, { name: "a5", type: "x" });
    expect(sixth.errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED" });
    expect(sixth.errors![0]!.extensions!.retryAfter).toBeGreaterThan(86_000);
    const denied = await log(t, ["access.denied"]);
    expect(denied.map((e: any) => e.data.reason)).toEqual(["quota:agent-create"]);
    expect(await eventCount(t.tenantId)).toBe(before + 1);
    const enterprise = await app.seedTenant({ tier: "enterprise" });
    for (let i = 0; i < 7; i++) expect((await create(enterprise, { name: `e${i}`, type: "x" })).errors).toBeUndefined();
  });
});

describe("enrollment counts against the agent-create quota", () => {
  const agentIds = async (t: SeededTenant) =>
    (await app.gql("{ agents(first: 50) { nodes { id } } }", {}, { token: t.tokens.viewer })).data.agents.nodes.map((n: any) => n.id).sort();
  const keyState = async (t: SeededTenant, id: string) =>
    (await app.gql("{ enrollmentKeys { id uses state } }", {}, { token: t.tokens.admin })).data.enrollmentKeys.find((k: any) => k.id === id);

  it("a free tenant refused a sixth createAgent cannot get agents by enrolling: RATE_LIMITED with retryAfter, recorded, the key's uses untouched", async () => {
    const t = await app.seedTenant({ tier: "free" });
    for (let i = 0; i < 5; i++) expect((await create(t, { name: `a${i}`, type: "x" })).errors).toBeUndefined();
    const sixth = await create(t, { name: "a5", type: "x" });
    expect(sixth.errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED" });
    const agentsBefore = await agentIds(t);
    const key = await newKey(t, { reusable: true, maxUses: 50, tags: ["ci"] });
    const before = await eventCount(t.tenantId);
    for (let i = 0; i < 12; i++) {
      const res = await enroll(key.key, `runner-${i}`);
      expect(res.data?.enrollAgent ?? null).toBeNull();
      expect(res.status).toBe(429);
      // The same stable error createAgent gives: RATE_LIMITED, with the seconds until a slot frees.
      expect(res.errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", retryAfter: expect.any(Number) });
      expect(res.errors![0]!.extensions!.retryAfter).toBeGreaterThan(86_000);
      expect(res.errors![0]!.extensions!.retryAfter).toBeLessThanOrEqual(86_400);
    }
    expect(await agentIds(t)).toEqual(agentsBefore);
    expect(await keyState(t, key.id)).toEqual({ id: key.id, uses: 0, state: "active" });
    // Nothing but the (sampled) refusal: no agent, no key use, no credential.
    const denied = await log(t, ["access.denied"]);
    const enrollDenied = denied.filter((e: any) => e.data.action === "agent-create" && e.data.details?.keyPrefix === key.prefix);
    expect(enrollDenied.length).toBeGreaterThanOrEqual(1);
    expect(enrollDenied[0].data).toMatchObject({ reason: "quota:agent-create", resource: "agent", details: { limit: 5, keyPrefix: key.prefix } });
    expect(await eventCount(t.tenantId)).toBe(before + enrollDenied.length);
    expect(await log(t, ["enrollment_key.used", "agent.enrolled"])).toEqual([]);
    expect(JSON.stringify(denied)).not.toContain(key.key.slice(`kpe_${key.prefix}_`.length));
  });

  it("createAgent and enrollment share one count; ephemeral agents count; a key bound to an existing agent creates nothing and is not refused", async () => {
    const t = await app.seedTenant({ tier: "free" });
    for (let i = 0; i < 2; i++) expect((await create(t, { name: `a${i}`, type: "x" })).errors).toBeUndefined();
    const reusable = await newKey(t, { reusable: true, maxUses: 10 });
    for (let i = 0; i < 2; i++) expect((await enroll(reusable.key, `host-${i}`)).errors).toBeUndefined();
    // Four of five: one ephemeral agent takes the last slot, and then nothing more is created.
    const ephemeral = await newKey(t, { ephemeral: true, reusable: true, maxUses: 5 });
    expect((await enroll(ephemeral.key, "ci-job-1")).errors).toBeUndefined();
    expect((await enroll(ephemeral.key, "ci-job-2")).errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", retryAfter: expect.any(Number) });
    expect((await enroll(reusable.key, "host-2")).errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
    expect((await create(t, { name: "a2", type: "x" })).errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
    expect(await agentIds(t)).toHaveLength(5);
    expect(await keyState(t, ephemeral.id)).toMatchObject({ uses: 1, state: "active" });

    // Binding a machine to an agent that exists is not a creation: it goes through at a full quota.
    const [existing] = await agentIds(t);
    const bound = await newKey(t, { agentId: existing });
    const res = await enroll(bound.key, "rebuilt-host");
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect(res.data.enrollAgent.agentId).toBe(existing);
    expect(await agentIds(t)).toHaveLength(5);

    // Another tenant's quota is its own.
    const other = await app.seedTenant({ tier: "free" });
    const otherKey = await newKey(other);
    expect((await enroll(otherKey.key, "elsewhere")).errors).toBeUndefined();
    expect(await agentIds(other)).toHaveLength(1);
  });

  it("machines enrolling at once with one reusable key get exactly the quota's worth of agents", async () => {
    const t = await app.seedTenant({ tier: "free" });
    const key = await newKey(t, { reusable: true, maxUses: 100 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => enroll(key.key, `burst-${i}`)));
    expect(results.filter((r) => r.data?.enrollAgent)).toHaveLength(5);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === "RATE_LIMITED")).toHaveLength(3);
    expect(await agentIds(t)).toHaveLength(5);
    expect(await keyState(t, key.id)).toMatchObject({ uses: 5 });
  });
});

describe("enrollment is limited per source address", () => {
  it("answers RATE_LIMITED with retryAfter past ENROLL_ATTEMPTS_PER_MINUTE", async () => {
    const limited = await createTestApp({ name: "agents-limit", env: { ENROLL_ATTEMPTS_PER_MINUTE: "3" } });
    try {
      const attempt = () =>
        limited.gql("mutation ($input: EnrollAgentInput!) { enrollAgent(input: $input) { agentId } }", {
          input: { key: "kpe_nope", hostname: "h", os: "linux", arch: "x64", agentVersion: "1" },
        });
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push((await attempt()).errors?.[0]?.extensions);
      expect(codes.slice(0, 3).map((c) => c?.code)).toEqual(["UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"]);
      expect(codes[3]).toMatchObject({ code: "RATE_LIMITED", retryAfter: expect.any(Number) });
    } finally {
      await limited.close();
    }
  });

  it("counts refused keys only: a valid key from the same address still enrolls, and the refused ones stay refused", async () => {
    const limited = await createTestApp({ name: "agents-limit-valid", env: { ENROLL_ATTEMPTS_PER_MINUTE: "3" } });
    try {
      const attempt = (key: string, hostname = "h") =>
        limited.gql("mutation ($input: EnrollAgentInput!) { enrollAgent(input: $input) { agentId tenantId accessToken refreshToken } }", {
          input: { key, hostname, os: "linux", arch: "x64", agentVersion: "1" },
        });
      // Someone behind the same address guesses keys until they are refused for it.
      for (let i = 0; i < 3; i++) expect((await attempt(`kpe_${"a".repeat(10)}_${"B".repeat(43)}`)).errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect((await attempt("kpe_nope")).errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
      // Machines of two tenants enroll with their valid keys meanwhile.
      for (const [i, tier] of (["free", "pro"] as const).entries()) {
        const t = await limited.seedTenant({ tier });
        const made = await limited.gql("mutation { createEnrollmentKey(input: { reusable: true, maxUses: 5 }) { key } }", {}, { token: t.tokens.admin });
        const key = made.data.createEnrollmentKey.key as string;
        registerSecret(key);
        for (let n = 0; n < 2; n++) {
          const res = await attempt(key, `machine-${i}-${n}`);
          expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
          registerSecret(res.data.enrollAgent.accessToken);
          registerSecret(res.data.enrollAgent.refreshToken);
          expect(res.data.enrollAgent.tenantId).toBe(t.tenantId);
        }
      }
      expect((await attempt("kpe_still_no")).errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", retryAfter: expect.any(Number) });
    } finally {
      await limited.close();
    }
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)("two Keyplane processes on one PostgreSQL", () => {
  it("share the tier quota exactly and sweep an agent offline once", async () => {
    const second = await createTestApp({
      name: "agents-second",
      database: app.database,
      now: clock.now,
      env: { AGENT_OFFLINE_AFTER: "1", ENROLL_ATTEMPTS_PER_MINUTE: "1000" },
    });
    try {
      const t = await app.seedTenant({ tier: "free" });
      const other = await second.mintToken({ tenantId: t.tenantId, roles: ["editor"], subject: "editor-2" });
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 ? second : app).gql(
            'mutation ($n: String!) { createAgent(input: { name: $n, type: "x" }) { id } }',
            { n: `q${i}` },
            { token: i % 2 ? other : t.tokens.editor },
          ),
        ),
      );
      expect(results.filter((r) => r.data?.createAgent)).toHaveLength(5);
      expect(results.filter((r) => r.errors?.[0]?.extensions?.code === "RATE_LIMITED")).toHaveLength(3);

      // The quota is used up: the machine enrolls as one of the agents made above (no creation).
      const made = results.find((r) => r.data?.createAgent)!.data.createAgent.id as string;
      const enrolled = (await enroll((await newKey(t, { agentId: made })).key)).data.enrollAgent;
      await app.gql("mutation { agentHeartbeat(input: {}) { agentId } }", {}, { token: enrolled.accessToken });
      // The three sweeps below must race on an agent already silent for AGENT_OFFLINE_AFTER (1 s): both
      // processes read the one clock, which moves on past it.
      clock.advance(PAST_ONE_SECOND);
      await Promise.all([app.kp.agentSweeper.runOnce(), second.kp.agentSweeper.runOnce(), app.kp.agentSweeper.runOnce()]);
      // A background sweep holding the sweep lock meanwhile makes all three skip: sweep on until it is offline.
      await sweepUntil("the agent to be swept offline", t, ["agent.offline"]);
      expect(await log(t, ["agent.offline"])).toHaveLength(1);
    } finally {
      await second.close();
    }
  });
});

describe("tenant isolation", () => {
  it("another tenant sees none of the agents or keys and changes nothing; a key enrolls only into its own tenant", async () => {
    const a = await app.seedTenant({ tier: "pro" });
    const b = await app.seedTenant({ tier: "pro" });
    const agent = (await create(a, { name: "mine", type: "x" })).data.createAgent;
    const key = await newKey(a);
    expect((await app.gql("query ($id: ID!) { agent(id: $id) { id } }", { id: agent.id }, { token: b.tokens.admin })).errors?.[0]?.extensions?.code).toBe(
      "NOT_FOUND",
    );
    expect((await app.gql("{ agents(first: 10) { nodes { id } } }", {}, { token: b.tokens.admin })).data.agents.nodes).toEqual([]);
    expect((await app.gql("{ enrollmentKeys { id } }", {}, { token: b.tokens.admin })).data.enrollmentKeys).toEqual([]);
    expect(
      (
        await app.gql(
          "mutation ($input: UpdateAgentInput!) { updateAgent(input: $input) { id } }",
          { input: { id: agent.id, expectedVersion: 1, name: "theirs" } },
          { token: b.tokens.editor },
        )
      ).errors?.[0]?.extensions?.code,
    ).toBe("NOT_FOUND");
    expect((await app.gql("mutation ($id: ID!) { deleteAgent(id: $id) }", { id: agent.id }, { token: b.tokens.admin })).errors?.[0]?.extensions?.code).toBe(
      "NOT_FOUND",
    );
    expect(
      (await app.gql("mutation ($id: ID!) { revokeEnrollmentKey(id: $id) }", { id: key.id }, { token: b.tokens.admin })).errors?.[0]?.extensions?.code,
    ).toBe("NOT_FOUND");
    const enrolled = (await enroll(key.key)).data.enrollAgent;
    expect(enrolled.tenantId).toBe(a.tenantId);
    expect((await app.gql("{ agents(first: 10) { nodes { id } } }", {}, { token: b.tokens.admin })).data.agents.nodes).toEqual([]);
  });
});
