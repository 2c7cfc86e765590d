import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { readOldestUnsignedEventAge } from "../../src/store/audit/readOldestUnsignedEventAge.ts";
import { onPostgres } from "../testkit/testDatabase.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { subscribeEvents } from "../testkit/eventSubscriber.ts";
import { waitFor } from "../testkit/waitFor.ts";

/** One sample of a metric family with exactly these labels, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

describe("observability", () => {
  const lines: Array<Record<string, any>> = [];
  let app: TestApp;
  let tenant: SeededTenant;
  const metrics = () => fetch(`${app.url}/metrics`).then((r) => r.text());

  beforeAll(async () => {
    const logger = createLogger({ level: "debug", destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
    app = await createTestApp({ logger });
    tenant = await app.seedTenant();
  });
  afterAll(() => app.close());

  describe("trace context (traceparent) in the logs", () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";

    it("continues the caller's trace: every line of the request carries its trace id and a span of its own", async () => {
      // A refused token: the request writes lines of its own (auth failure) besides its request line.
      const res = await fetch(`${app.url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer not-a-jwt",
          traceparent: `00-${traceId}-${parentId}-01`,
          "x-request-id": "trace-test-1",
        },
        body: JSON.stringify({ query: "{ me { subject } }" }),
      });
      expect(res.status).toBe(401);
      await res.text();
      // The request line is the request's last, written once the response has finished.
      await waitFor("the request line of trace-test-1", () => lines.some((l) => l.requestId === "trace-test-1" && l.msg === "request"));
      const mine = lines.filter((l) => l.requestId === "trace-test-1");
      expect(mine.length).toBeGreaterThanOrEqual(2);
      expect(mine.some((l) => l.msg === "request")).toBe(true);
      for (const line of mine) {
        expect(line.traceId).toBe(traceId);
        expect(line.parentSpanId).toBe(parentId);
        expect(line.spanId).toMatch(/^[0-9a-f]{16}$/);
        expect(line.spanId).not.toBe(parentId);
      }
      expect(new Set(mine.map((l) => l.spanId)).size).toBe(1);
    });

    it("starts a new trace without a traceparent, or with an invalid one, per request", async () => {
      const ids: string[] = [];
      const headers: Array<Record<string, string>> = [
        {},
        { traceparent: `ff-${traceId}-${parentId}-01` }, // version ff is invalid
        { traceparent: `00-${"0".repeat(32)}-${parentId}-01` }, // all-zero trace id
        { traceparent: `00-${traceId}-${"0".repeat(16)}-01` }, // all-zero parent
        { traceparent: `00-${traceId.toUpperCase()}-${parentId}-01` }, // upper case
        { traceparent: `00-${traceId}-${parentId}-01-extra` }, // version 00 has four fields
      ];
      for (const [i, extra] of headers.entries()) {
        const id = `trace-test-new-${i}`;
        const res = await fetch(`${app.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${tenant.tokens.viewer}`, "x-request-id": id, ...extra },
          body: JSON.stringify({ query: "{ me { subject } }" }),
        });
        expect(res.status).toBe(200);
        await res.text();
        ids.push(id);
      }
      const traces = await waitFor("the request lines of trace-test-new-*", () => {
        const found = ids.map((id) => lines.find((l) => l.requestId === id && l.msg === "request"));
        return found.every(Boolean) && (found as Array<Record<string, any>>);
      });
      for (const line of traces) {
        expect(line.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(line.traceId).not.toBe(traceId);
        expect(line.parentSpanId).toBeUndefined();
        expect(line.tenantId).toBe(tenant.tenantId);
      }
      expect(new Set(traces.map((l) => l.traceId)).size).toBe(ids.length);
    });

    it("accepts a later version's traceparent with more fields", async () => {
      const res = await fetch(`${app.url}/healthz`, { headers: { traceparent: `01-${traceId}-${parentId}-01-future`, "x-request-id": "trace-test-v1" } });
      expect(res.status).toBe(200);
      const res2 = await fetch(`${app.url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${tenant.tokens.viewer}`,
          traceparent: `01-${traceId}-${parentId}-01-future`,
          "x-request-id": "trace-test-v2",
        },
        body: JSON.stringify({ query: "{ me { subject } }" }),
      });
      await res2.text();
      const line = await waitFor("the request line of trace-test-v2", () => lines.find((l) => l.requestId === "trace-test-v2" && l.msg === "request"));
      expect(line).toMatchObject({ traceId, parentSpanId: parentId });
    });
  });

  describe("/metrics", () => {
    it("counts and times GraphQL operations by type, name, root field and outcome", async () => {
      await app.gql("query WhoAmI { me { subject } }", {}, { token: tenant.tokens.viewer });
      await app.gql("query WhoAmI { me { subject } }", {}, { token: tenant.tokens.viewer });
      await app.gql("{ tenant { id } }", {}, { token: tenant.tokens.viewer });
      // A viewer may not issue service tokens: FORBIDDEN.
      await app.gql('mutation Issue { issueServiceToken(input: { subject: "bot" }) { __typename } }', {}, { token: tenant.tokens.viewer });
      const text = await metrics();
      expect(sample(text, "keyplane_graphql_operations_total", { type: "query", operation: "WhoAmI", root_field: "me", outcome: "ok" })).toBe(2);
      expect(sample(text, "keyplane_graphql_operations_total", { type: "query", operation: "anonymous", root_field: "tenant", outcome: "ok" })).toBe(1);
      expect(
        sample(text, "keyplane_graphql_operations_total", { type: "mutation", operation: "Issue", root_field: "issueServiceToken", outcome: "FORBIDDEN" }),
      ).toBe(1);
      expect(sample(text, "keyplane_graphql_operation_duration_seconds_count", { type: "query", operation: "WhoAmI" })).toBe(2);
      expect(sample(text, "keyplane_graphql_operation_duration_seconds_sum", { type: "query", operation: "WhoAmI" })).toBeGreaterThan(0);
    });

    it("counts subscriptions over graphql-ws too, and the live feed's lag", async () => {
      const subscriber = subscribeEvents(app.url, tenant.tokens.admin);
      try {
        await subscriber.connected;
        // Counted once the subscription has started, which is after the connection's ack.
        const subscriptions = () =>
          metrics().then((text) =>
            sample(text, "keyplane_graphql_operations_total", { type: "subscription", operation: "anonymous", root_field: "tenantEvents", outcome: "ok" }),
          );
        await waitFor("the subscription to be counted", async () => (await subscriptions()) !== undefined);
        expect(await subscriptions()).toBe(1);
        // The first event may reach a subscriber that is still finding where "latest" is by its catch-up
        // read (no lag to measure); once it has one event it is live, and the second comes through the feed.
        for (const subject of ["lag-probe-1", "lag-probe-2"]) {
          await app.gql("mutation ($s: String!) { issueServiceToken(input: { subject: $s }) { tokenId } }", { s: subject }, { token: tenant.tokens.admin });
          await subscriber.until((e) => e.some((x) => x.type === "access_token.issued" && JSON.stringify(x.data).includes(subject)));
        }
        expect(sample(await metrics(), "keyplane_live_event_lag_seconds_count")).toBeGreaterThanOrEqual(1);
      } finally {
        await subscriber.dispose();
      }
    });

    it("counts HTTP requests by method, route and status, and times them", async () => {
      await fetch(`${app.url}/no/such/path/${Math.random()}`).then((r) => r.text());
      await fetch(`${app.url}/oauth/callback/github?state=x`).then((r) => r.text());
      const text = await metrics();
      expect(sample(text, "keyplane_http_requests_total", { method: "POST", route: "/graphql", status: "200" })).toBeGreaterThanOrEqual(4);
      expect(sample(text, "keyplane_http_requests_total", { method: "POST", route: "/graphql", status: "401" })).toBeGreaterThanOrEqual(1);
      // Unknown paths collapse into one label value; path parameters into their route.
      expect(sample(text, "keyplane_http_requests_total", { method: "GET", route: "other", status: "404" })).toBeGreaterThanOrEqual(1);
      expect(sample(text, "keyplane_http_requests_total", { method: "GET", route: "/oauth/callback/*", status: "400" })).toBe(1);
      expect(text).not.toMatch(/route="\/no\/such/);
      expect(sample(text, "keyplane_http_request_duration_seconds_count", { method: "POST", route: "/graphql" })).toBeGreaterThanOrEqual(5);
    });

    it("counts appended events by type", async () => {
      const before = sample(await metrics(), "keyplane_event_appends_total", { type: "tenant.created" }) ?? 0;
      await app.seedTenant();
      const text = await metrics();
      expect(sample(text, "keyplane_event_appends_total", { type: "tenant.created" })).toBe(before + 1);
      expect(sample(text, "keyplane_event_appends_total", { type: "access_token.issued" })).toBeGreaterThanOrEqual(4);
      // Security events too (the refused token above).
      expect(sample(text, "keyplane_event_appends_total", { type: "auth.failed" })).toBeGreaterThanOrEqual(1);
      // And an export, which records itself before its first line.
      const exported = sample(text, "keyplane_event_appends_total", { type: "audit.exported" }) ?? 0;
      const res = await fetch(`${app.url}/audit/export`, { headers: { authorization: `Bearer ${tenant.tokens.admin}` } });
      expect(res.status).toBe(200);
      await res.text();
      expect(sample(await metrics(), "keyplane_event_appends_total", { type: "audit.exported" })).toBe(exported + 1);
    });

    it("shows the database connections", async () => {
      const text = await metrics();
      expect(sample(text, "keyplane_db_pool_connections", { state: "max" })).toBe(onPostgres ? 12 : 1);
      expect(sample(text, "keyplane_db_pool_connections", { state: "total" })).toBeGreaterThanOrEqual(1);
      if (onPostgres) {
        expect(sample(text, "keyplane_db_pool_connections", { state: "idle" })).toBeGreaterThanOrEqual(0);
        expect(sample(text, "keyplane_db_pool_connections", { state: "waiting" })).toBe(0);
      }
    });

    it("shows how long the oldest event has waited for a signed audit checkpoint (0 once all are signed)", async () => {
      const text = await metrics();
      expect(sample(text, "keyplane_audit_checkpoint_oldest_unsigned_seconds")).toBeGreaterThanOrEqual(0);
      // The age grows with the clock: wait until the oldest unsigned event is a second old.
      await waitFor("the oldest unsigned event to be a second old", async () => (await readOldestUnsignedEventAge(app.kp.deps.db)) >= 1);
      await app.kp.checkpointSigner.runOnce({ force: true });
      expect(await readOldestUnsignedEventAge(app.kp.deps.db)).toBe(0);
    });
  });
});
