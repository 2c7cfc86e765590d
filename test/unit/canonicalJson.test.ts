import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/store/events/canonicalJson.ts";
import { chainHash, contentHash, genesisHash } from "../../src/store/events/hashing.ts";

describe("canonical JSON (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units and drops whitespace", () => {
    expect(canonicalJson({ b: 1, a: [true, null, "x"], "€": 0, "\u0080": 1, A: { d: 2, c: 1 } })).toBe(
      '{"A":{"c":1,"d":2},"a":[true,null,"x"],"b":1,"\u0080":1,"€":0}',
    );
  });

  it("serializes numbers as ECMAScript does", () => {
    expect(canonicalJson([1.0, 1e21, 1e-7, -0, 0.1 + 0.2, 333333333.3333333])).toBe("[1,1e+21,1e-7,0,0.30000000000000004,333333333.3333333]");
  });

  it("escapes strings minimally", () => {
    expect(canonicalJson("\u2028\n\"\\\u001f é")).toBe('"\u2028\\n\\"\\\\\\u001f é"');
  });

  it("omits undefined members and refuses what JSON cannot hold", () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(() => canonicalJson(NaN)).toThrow();
    expect(() => canonicalJson({ f: () => 1 })).toThrow();
  });

  it("gives the same content hash whatever the key order", () => {
    const base = { eventId: "e", tenantId: "t", streamType: "s", streamId: "1", streamVersion: 1, type: "x.y", schemaVersion: 1, occurredAt: "2026-01-01T00:00:00.000Z" };
    expect(contentHash({ ...base, data: { a: 1, b: 2 }, metadata: {} })).toBe(contentHash({ ...base, data: { b: 2, a: 1 }, metadata: {} }));
    expect(contentHash({ ...base, data: { a: 1 }, metadata: {} })).not.toBe(contentHash({ ...base, data: { a: 2 }, metadata: {} }));
  });

  it("chains from a per-tenant genesis", () => {
    expect(genesisHash("a")).not.toBe(genesisHash("b"));
    expect(chainHash(genesisHash("a"), 1, "c")).toMatch(/^[0-9a-f]{64}$/);
    expect(chainHash(genesisHash("a"), 1, "c")).not.toBe(chainHash(genesisHash("a"), 2, "c"));
  });
});
