import { getOperationAST, parse } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../../src/graphql/schema.ts";
import { DEFAULT_DOCUMENT_LIMITS } from "../../src/config/limitDefaults.ts";
import { operationCost, PageSizeError } from "../../src/limits/queryCost.ts";
import { rateLimitHeaders, type PolicyCheck } from "../../src/limits/rateLimits.ts";

const cost = (query: string, variables: Record<string, unknown> = {}) => {
  const document = parse(query);
  return operationCost(schema, document, getOperationAST(document)!, variables, DEFAULT_DOCUMENT_LIMITS);
};

describe("query cost", () => {
  it("counts objects: scalars are free, an object costs 1, a connection hands its page size to nodes and edges", () => {
    expect(cost("{ __typename }")).toBe(0);
    expect(cost("{ me { subject } }")).toBe(1);
    expect(cost("{ agents(first: 100) { nodes { id } } }")).toBe(101);
    expect(cost("{ agents(first: 10) { edges { cursor node { id } } pageInfo { hasNextPage } } }")).toBe(1 + 10 + 10 + 1);
    expect(cost("query ($n: Int!) { tasks(first: $n) { nodes { id } } }", { n: 25 })).toBe(26);
  });

  it("multiplies nested lists, takes defaults, follows fragments and honours @skip/@include", () => {
    expect(cost("{ agents(first: 100) { nodes { history(first: 100) { type } } } }")).toBe(1 + 100 + 100 * 100);
    expect(cost("{ agents(first: 2) { nodes { history { type } } } }")).toBe(1 + 2 + 2 * 50); // history defaults to 50
    expect(cost("{ tokenPolicies { name } }")).toBe(DEFAULT_DOCUMENT_LIMITS.defaultListSize);
    expect(cost("query { ...F } fragment F on Query { me { subject } tenant { id } }")).toBe(2);
    expect(cost("query ($s: Boolean!) { me @skip(if: $s) { subject } tenant { id } }", { s: true })).toBe(1);
  });

  it("weighs root mutation fields, scalar ones included", () => {
    expect(cost("mutation { pruneEnrollmentKeys }")).toBe(DEFAULT_DOCUMENT_LIMITS.mutationCost);
    expect(cost('mutation { createAgent(input: { name: "a", type: "b" }) { id } }')).toBe(DEFAULT_DOCUMENT_LIMITS.mutationCost);
  });

  it("walks each fragment once: a fan-out of spreads costs what it counts, in linear time", () => {
    // k spreads of F1, each spreading F2 k times, ...: k^levels objects are counted, but each fragment
    // is walked once. Walking every spread, k = 20 over 8 levels would take 2.6e10 steps (this test
    // would time out); a 3 KB document with k = 120 over 4 levels held the event loop for 25 s.
    const fanOut = (k: number, levels: number, leaf: string) => {
      const spreads = (n: number) => Array.from({ length: k }, () => `...F${n}`).join(" ");
      let query = `query { ${spreads(1)} } `;
      for (let level = 1; level < levels; level++) query += `fragment F${level} on Query { ${spreads(level + 1)} } `;
      return `${query}fragment F${levels} on Query { ${leaf} }`;
    };
    expect(cost(fanOut(3, 4, "me { subject }"))).toBe(3 ** 4);
    expect(cost(fanOut(3, 4, "__typename"))).toBe(0);
    expect(cost(fanOut(120, 4, "me { subject }"))).toBe(120 ** 4);
    expect(cost(fanOut(20, 8, "me { subject } tenant { id }"))).toBe(2 * 20 ** 8);
  });

  it("refuses pages outside 1..100 before anything runs", () => {
    expect(() => cost("{ agents(first: 101) { nodes { id } } }")).toThrow(PageSizeError);
    expect(() => cost("{ agents(first: 0) { nodes { id } } }")).toThrow(/agents: first\/last must be between 1 and 100/);
    expect(() => cost("{ agents(first: 5) { nodes { history(first: 1000) { type } } } }")).toThrow(/agents\.nodes\.history/);
  });
});

describe("RateLimit headers (draft-ietf-httpapi-ratelimit-headers)", () => {
  const check = (
    policy: PolicyCheck["policy"],
    limit: number,
    windowSeconds: number,
    remaining: number,
    resetSeconds: number,
    limited = false,
  ): PolicyCheck => ({ policy, limit, windowSeconds, remaining, resetSeconds, limited });

  it("lists each policy once (the last state of a repeated one) and adds Retry-After for the longest refusal", () => {
    const headers = rateLimitHeaders([
      check("tenant", 300, 60, 0, 42, true),
      check("tenant-burst", 9, 1, 3, 1),
      check("cost", 15000, 60, 14000, 42),
      check("cost", 15000, 60, 13900, 42),
    ]);
    expect(headers).toEqual({
      "RateLimit-Policy": '"tenant";q=300;w=60, "tenant-burst";q=9;w=1, "cost";q=15000;w=60;keyplane-unit="query-cost"',
      RateLimit: '"tenant";r=0;t=42, "tenant-burst";r=3;t=1, "cost";r=13900;t=42',
      "Retry-After": "42",
    });
    expect(rateLimitHeaders([])).toEqual({});
  });
});
