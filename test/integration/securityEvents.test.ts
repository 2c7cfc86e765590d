import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSecurityRecorder } from "../../src/app/recordSecurityEvent.ts";
import { PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { createLogger } from "../../src/logger.ts";
import { withPlatform, withTenant, type Tx } from "../../src/store/db.ts";
import { rowToStoredEvent } from "../../src/store/events/rowToStoredEvent.ts";
import type { StoredEvent } from "../../src/store/events/types.ts";
import { createTestApp, type TestApp } from "../testkit/testApp.ts";

// Security events live in the same hash-chained log as everything else, with the audit fields an
// auditor filters on, and floods are folded: one event per principal, kind and minute, with a count.

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ name: "security-events" });
});
afterAll(async () => {
  await app?.close();
});

async function securityEvents(tenantId: string, since = 0): Promise<StoredEvent[]> {
  const query = (trx: Tx) =>
    trx
      .selectFrom("events")
      .selectAll()
      .where("tenant_id", "=", tenantId)
      .where("stream_type", "=", "security")
      .where("tenant_seq", ">", since)
      .orderBy("tenant_seq")
      .execute();
  const rows = tenantId === PLATFORM_TENANT ? await withPlatform(app.kp.deps.db, query) : await withTenant(app.kp.deps.db, tenantId, query);
  return rows.map(rowToStoredEvent);
}

const head = async (tenantId: string) => (await securityEvents(tenantId)).at(-1)?.sequence ?? 0;

describe("security events", () => {
  it("a forbidden operation is recorded in the tenant's log with who, from where, which request, what and how it ended", async () => {
    const t = await app.seedTenant();
    const res = await app.gql(
      `mutation { publishAgent(id: "00000000-0000-4000-8000-000000000000") { id } }`,
      {},
      { token: t.tokens.viewer, headers: { "x-request-id": "req-forbidden-1", "x-forwarded-for": "203.0.113.9" } },
    );
    expect(res.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const [event] = (await securityEvents(t.tenantId)).filter((e) => e.type === "access.denied");
    expect(event).toBeDefined();
    expect(event!.data).toMatchObject({ level: "warning", status: "denied", reason: "forbidden", action: "agent:manage", resource: "graphql" });
    expect(event!.metadata).toMatchObject({ actor: { subject: `viewer@${t.tenantId}` }, requestId: "req-forbidden-1" });
    expect(typeof event!.metadata.sourceIp).toBe("string");
    expect(event!.occurredAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(event!.contentHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("a refused token with no tenant to name goes to the platform log", async () => {
    const before = await head(PLATFORM_TENANT);
    const res = await app.gql(`{ me { subject } }`, {}, { token: "not.a.token", headers: { "x-request-id": "req-bad-token" } });
    expect(res.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    const recorded = (await securityEvents(PLATFORM_TENANT, before)).filter((e) => e.metadata.requestId === "req-bad-token");
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.data).toMatchObject({ level: "warning", status: "failed", action: "authenticate" });
    expect(JSON.stringify(recorded[0])).not.toContain("not.a.token");
  });

  it("a flood is folded into one event per principal, kind and minute; the next one says how many were folded", async () => {
    const t = await app.seedTenant();
    let clock = Date.parse("2026-11-23T10:00:00Z");
    const recorder = createSecurityRecorder({ db: app.kp.deps.db, logger: createLogger({ level: "silent" }), now: () => new Date(clock) });
    const incident = (subject: string) => ({
      type: "access.denied" as const,
      tenantId: t.tenantId,
      actor: null,
      level: "warning" as const,
      status: "denied" as const,
      reason: "rate-limited",
      action: "graphql",
      request: { sourceIp: subject, requestId: `flood-${subject}` },
    });
    for (let i = 0; i < 50; i++) await recorder.record(incident("198.51.100.1"));
    await recorder.record(incident("198.51.100.2"));
    let events = (await securityEvents(t.tenantId)).filter((e) => e.data.reason === "rate-limited");
    expect(events.map((e) => e.metadata.sourceIp)).toEqual(["198.51.100.1", "198.51.100.2"]);
    expect(events[0]!.data.suppressed).toBeUndefined();

    clock += 30_000;
    for (let i = 0; i < 9; i++) await recorder.record(incident("198.51.100.1"));
    expect((await securityEvents(t.tenantId)).filter((e) => e.data.reason === "rate-limited")).toHaveLength(2);

    clock += 31_000;
    await recorder.record(incident("198.51.100.1"));
    events = (await securityEvents(t.tenantId)).filter((e) => e.data.reason === "rate-limited");
    expect(events).toHaveLength(3);
    expect(events[2]!.data.suppressed).toBe(58);
  });
});
