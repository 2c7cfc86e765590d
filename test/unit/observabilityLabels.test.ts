import { describe, expect, it } from "vitest";
import { createSchema, createYoga } from "graphql-yoga";
import { graphqlMetricsPlugin } from "../../src/http/graphqlMetrics.ts";
import { methodOf, routeOf } from "../../src/http/httpMetrics.ts";
import { formatTraceparent, parseTraceparent, traceContextOf } from "../../src/http/traceContext.ts";
import { createMetrics } from "../../src/metrics.ts";

describe("trace context", () => {
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const parent = "00f067aa0ba902b7";

  it("reads a valid traceparent and refuses malformed ones", () => {
    expect(parseTraceparent(`00-${trace}-${parent}-01`)).toEqual({ traceId: trace, parentSpanId: parent, traceFlags: "01" });
    expect(parseTraceparent(` 00-${trace}-${parent}-00 `)).toEqual({ traceId: trace, parentSpanId: parent, traceFlags: "00" });
    expect(parseTraceparent(`02-${trace}-${parent}-01-more-fields`)).toMatchObject({ traceId: trace });
    for (const bad of [
      undefined,
      "",
      "garbage",
      `00-${trace}-${parent}`,
      `00-${trace}-${parent}-01-extra`,
      `ff-${trace}-${parent}-01`,
      `00-${"0".repeat(32)}-${parent}-01`,
      `00-${trace}-${"0".repeat(16)}-01`,
      `00-${trace.toUpperCase()}-${parent}-01`,
      `00-${trace.slice(1)}-${parent}-01`,
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
    expect(parseTraceparent([`00-${trace}-${parent}-01`])).toBeUndefined();
  });

  it("gives each request a span of its own in the caller's trace, or a new trace", () => {
    const continued = traceContextOf(`00-${trace}-${parent}-01`);
    expect(continued).toMatchObject({ traceId: trace, parentSpanId: parent, traceFlags: "01" });
    expect(continued.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(formatTraceparent(continued)).toBe(`00-${trace}-${continued.spanId}-01`);
    const fresh = traceContextOf(undefined);
    expect(fresh.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(fresh.parentSpanId).toBeUndefined();
    expect(traceContextOf(undefined).traceId).not.toBe(fresh.traceId);
  });
});

describe("metric labels stay bounded", () => {
  it("maps paths to routes and methods to a fixed set", () => {
    expect(routeOf("/graphql")).toBe("/graphql");
    expect(routeOf("/oauth/install/github")).toBe("/oauth/install/*");
    expect(routeOf("/oauth/callback/slack")).toBe("/oauth/callback/*");
    expect(routeOf("/anything/else/123")).toBe("other");
    expect(methodOf("GET")).toBe("GET");
    expect(methodOf("BREW")).toBe("other");
  });

  it("keeps the first operation names and collapses later, overlong and missing ones", async () => {
    const metrics = createMetrics();
    const yoga = createYoga({
      schema: createSchema({
        typeDefs: "type Query { a: Int b: Int }",
        resolvers: {
          Query: {
            a: () => 1,
            b: () => {
              throw new Error("boom");
            },
          },
        },
      }),
      plugins: [graphqlMetricsPlugin(metrics, { maxOperationNames: 2 })],
      logging: false,
      maskedErrors: false,
    });
    const run = async (query: string) =>
      (
        await yoga.fetch("http://localhost/graphql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query }) })
      ).json();
    await run("query One { a }");
    await run("query Two { a }");
    await run("query Three { a }");
    await run("query One { b }");
    await run(`query ${"L".repeat(80)} { a }`);
    await run("{ a }");
    const values = (await metrics.graphqlOperations.get()).values.map((v) => ({ ...v.labels, value: v.value }));
    expect(values).toEqual(
      expect.arrayContaining([
        { type: "query", operation: "One", root_field: "a", outcome: "ok", value: 1 },
        { type: "query", operation: "Two", root_field: "a", outcome: "ok", value: 1 },
        { type: "query", operation: "other", root_field: "a", outcome: "ok", value: 2 },
        { type: "query", operation: "One", root_field: "b", outcome: "error", value: 1 },
        { type: "query", operation: "anonymous", root_field: "a", outcome: "ok", value: 1 },
      ]),
    );
    expect(new Set(values.map((v) => v.operation))).toEqual(new Set(["One", "Two", "other", "anonymous"]));
  });
});
