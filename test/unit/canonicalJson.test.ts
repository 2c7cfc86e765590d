import { describe, expect, it } from "vitest";
import { canonicalContentJson, hashContent, membersWritten, writeCanonicalJson } from "../../src/audit/canonicalContent.ts";
import { canonicalJson } from "../../src/audit/canonicalJson.ts";
import { chainHash, contentHash, genesisHash, type HashedContent } from "../../src/audit/hashing.ts";

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
    expect(canonicalJson('\u2028\n"\\\u001f é')).toBe('"\u2028\\n\\"\\\\\\u001f é"');
  });

  it("omits undefined members and refuses what JSON cannot hold", () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(() => canonicalJson(NaN)).toThrow();
    expect(() => canonicalJson({ f: () => 1 })).toThrow();
  });

  it("gives the same content hash whatever the key order", () => {
    const base = {
      eventId: "e",
      tenantId: "t",
      streamType: "s",
      streamId: "1",
      streamVersion: 1,
      type: "x.y",
      schemaVersion: 1,
      occurredAt: "2026-01-01T00:00:00.000Z",
    };
    expect(contentHash({ ...base, data: { a: 1, b: 2 }, metadata: {} })).toBe(contentHash({ ...base, data: { b: 2, a: 1 }, metadata: {} }));
    expect(contentHash({ ...base, data: { a: 1 }, metadata: {} })).not.toBe(contentHash({ ...base, data: { a: 2 }, metadata: {} }));
  });

  it("chains from a per-tenant genesis", () => {
    expect(genesisHash("a")).not.toBe(genesisHash("b"));
    expect(chainHash(genesisHash("a"), 1, "c")).toMatch(/^[0-9a-f]{64}$/);
    expect(chainHash(genesisHash("a"), 1, "c")).not.toBe(chainHash(genesisHash("a"), 2, "c"));
  });
});

// The verifier's writer (canonicalContent.ts) must hash the very bytes the append hashes.
describe("the verifier's canonical JSON (canonicalContent.ts)", () => {
  /** A small deterministic generator (mulberry32), so a failure names a reproducible case. */
  const random = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const STRINGS = [
    "",
    "a",
    "plain text",
    "é€𝄞",
    "\u2028\u2029",
    '"quoted"',
    "back\\slash",
    "\n\r\t\b\f",
    "\u0000\u001f\u007f",
    "\ud800",
    "x\udc00y",
    "😀",
    "\uFEFFbom",
    "日本語",
    "a:b",
    '":',
    "__proto__",
    "10",
    "9",
    "-1",
  ];
  const NUMBERS = [
    0,
    -0,
    1,
    -1,
    0.1,
    0.1 + 0.2,
    1e21,
    1e-7,
    1e20,
    123456789012345680000,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 63),
    1e308,
    5e-324,
    333333333.3333333,
    1.5e-10,
    4.35,
    100,
  ];
  const KEYS = [
    "b",
    "a",
    "B",
    "A",
    "10",
    "9",
    "1",
    "€",
    "\u0080",
    "é",
    "😀",
    "\ud83d",
    "aa",
    "a\u0000",
    "",
    "__proto__",
    "constructor",
    "toString",
    "kind",
    "z",
  ];
  function value(next: () => number, depth: number): unknown {
    const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
    const r = next();
    if (depth > 3 || r < 0.35) return pick<unknown>([...STRINGS, ...NUMBERS, true, false, null]);
    if (r < 0.55) return Array.from({ length: Math.floor(next() * 4) }, () => value(next, depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(next() * 6); i > 0; i--)
      Object.defineProperty(o, pick(KEYS), { value: value(next, depth + 1), enumerable: true, configurable: true, writable: true });
    return o;
  }
  /** Content as a line could hold it: any JSON value in any field (the writer must not assume the types). */
  const content = (next: () => number): HashedContent =>
    ({
      eventId: pick(next, ["e-1", "événement", 'quote"d', 7]),
      tenantId: pick(next, ["acme", "globex\n", "日本"]),
      streamType: "thing",
      streamId: pick(next, ["1", "a/b", "x\\y"]),
      streamVersion: pick(next, [1, 2, 1e21]),
      type: "thing.happened",
      schemaVersion: 1,
      data: value(next, 0),
      metadata: value(next, 1),
      occurredAt: "2026-01-01T00:00:00.000Z",
    }) as HashedContent;
  const pick = <T>(next: () => number, list: readonly T[]) => list[Math.floor(next() * list.length)]!;

  it("writes what canonicalJson writes, for values of every kind", () => {
    const next = random(17);
    for (let i = 0; i < 3000; i++) {
      const v = value(next, 0);
      expect(writeCanonicalJson(v), JSON.stringify(v)).toBe(canonicalJson(v));
    }
    const special: unknown[] = [
      { b: 1, a: [true, null, "x"], "€": 0, "\u0080": 1, A: { d: 2, c: 1 } },
      { "10": 1, "9": 2, b: 3, a: 4, "": 5 },
      JSON.parse('{"__proto__":{"b":1,"a":2},"z":[1,{"y":1,"x":2}]}'),
      [1.0, 1e21, 1e-7, -0, 0.1 + 0.2, 333333333.3333333, 2 ** 53 + 2, -(2 ** 64)],
      '\u2028\n"\\\u001f é\ud800\udc00\udc00',
      { a: undefined, b: 1, c: [undefined, 2] },
      { when: new Date(Date.UTC(2026, 0, 1)) },
      Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${(i * 7919) % 40}`, i])),
    ];
    for (const v of special) expect(writeCanonicalJson(v)).toBe(canonicalJson(v));
  });

  it("refuses what canonicalJson refuses", () => {
    for (const v of [NaN, Infinity, -Infinity, { a: Infinity }, [() => 1], { f: () => 1 }, 1n, Symbol("s"), undefined, { d: new Date(NaN) }]) {
      expect(() => canonicalJson(v)).toThrow();
      expect(() => writeCanonicalJson(v)).toThrow();
    }
  });

  it("writes the same without escaping checks when the strings came from JSON text without a backslash", () => {
    const next = random(23);
    let plain = 0;
    for (let i = 0; i < 3000; i++) {
      const text = JSON.stringify(value(next, 0));
      if (text === undefined || text.includes("\\")) continue;
      plain++;
      const v: unknown = JSON.parse(text);
      expect(writeCanonicalJson(v, true), text).toBe(canonicalJson(v));
    }
    expect(plain).toBeGreaterThan(500);
  });

  it("gives an event's content the canonical JSON and content hash the append gives it", () => {
    const next = random(29);
    for (let i = 0; i < 2000; i++) {
      const e = content(next);
      expect(canonicalContentJson(e)).toBe(
        canonicalJson({
          eventId: e.eventId,
          tenantId: e.tenantId,
          streamType: e.streamType,
          streamId: e.streamId,
          streamVersion: e.streamVersion,
          type: e.type,
          schemaVersion: e.schemaVersion,
          data: e.data,
          metadata: e.metadata,
          occurredAt: e.occurredAt,
        }),
      );
      expect(hashContent(e)).toBe(contentHash(e));
    }
    // Fields left undefined are left out, as canonicalJson leaves them out.
    const partial = { eventId: "e", tenantId: "t", data: { b: 1, a: 2 } } as unknown as HashedContent;
    expect(hashContent(partial)).toBe(contentHash(partial));
  });

  it("counts the members of the values it wrote, as a walk of them counts", () => {
    const walk = (v: unknown): number =>
      typeof v !== "object" || v === null
        ? 0
        : Array.isArray(v)
          ? v.reduce((n: number, x) => n + walk(x), 0)
          : Object.keys(v).reduce((n, k) => n + 1 + walk((v as Record<string, unknown>)[k]), 0);
    const next = random(31);
    for (let i = 0; i < 500; i++) {
      const e = content(next);
      canonicalContentJson(e);
      expect(membersWritten()).toBe(walk(e) - 10);
    }
  });
});
