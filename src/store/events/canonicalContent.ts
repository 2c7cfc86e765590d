import * as crypto from "node:crypto";
import type { HashedContent } from "./hashing.ts";

// canonicalJson and contentHash for the verifier, which hashes every event of an export: the same
// bytes (test/unit/canonicalJson.test.ts holds them equal on varied inputs), written faster.
//  - The content's ten keys are written in their sorted order, with no object built to hold them.
//  - A string is quoted as it is unless it holds a character JSON escapes (one regular expression
//    test rather than a JSON.stringify call each); a caller that knows no string needs escaping
//    (it parsed them from JSON text without a backslash) says so and skips even that test.
//  - An object's keys are sorted in place by insertion (most objects have a few keys).
// The append path keeps canonicalJson.ts, which is the specification's reading of RFC 8785.

/** A character JSON.stringify escapes: `"`, `\`, a control character, or a surrogate (paired or lone: the slow path tells). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

const quote = (text: string, plain: boolean): string => (plain || !NEEDS_ESCAPE.test(text) ? '"' + text + '"' : JSON.stringify(text));

// Events repeat the same few dozen keys: their quoted form (with the colon) is kept, up to a bound.
const quotedKeys = new Map<string, string>();
function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key) + ":";
    if (quotedKeys.size < 10_000 && key.length <= 64) quotedKeys.set(key, quoted);
  }
  return quoted;
}

/** Sorts by UTF-16 code units, as Array#sort does without a comparator. */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const key = keys[i]!;
    let j = i - 1;
    if (!(key < keys[j]!)) continue;
    while (j >= 0 && key < keys[j]!) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
}

/** Members of the objects written since the last canonicalContentJson began (see membersWritten). */
let members = 0;

/**
 * canonicalJson(value), the same text for any value. `plainStrings`: the caller vouches that no key
 * or string in it needs escaping (no `"`, `\`, control character or lone surrogate).
 */
export function writeCanonicalJson(value: unknown, plainStrings = false): string {
  switch (typeof value) {
    case "string":
      return quote(value, plainStrings);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON has no representation for " + value);
      // ToString, as JSON.stringify writes a finite number (-0 included: "0").
      return "" + value;
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ",";
          const item: unknown = value[i];
          out += item === undefined ? "null" : writeCanonicalJson(item, plainStrings);
        }
        return out + "]";
      }
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      members += keys.length;
      sortKeys(keys);
      let out = "{";
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        const member = record[key];
        if (member === undefined) continue;
        if (first) first = false;
        else out += ",";
        out += quotedKey(key) + writeCanonicalJson(member, plainStrings);
      }
      return out + "}";
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

/**
 * canonicalJson of exactly the HashedContent fields (as contentHash builds them), written in their
 * sorted order: data, eventId, metadata, occurredAt, schemaVersion, streamId, streamType,
 * streamVersion, tenantId, type. An undefined field is left out, as canonicalJson leaves it out.
 */
export function canonicalContentJson(e: HashedContent, plainStrings = false): string {
  members = 0;
  // (written out: a closure per event costs more than the repetition)
  let out = "{";
  let comma = "";
  if (e.data !== undefined) {
    out += '"data":' + writeCanonicalJson(e.data, plainStrings);
    comma = ",";
  }
  if (e.eventId !== undefined) {
    out += comma + '"eventId":' + writeCanonicalJson(e.eventId, plainStrings);
    comma = ",";
  }
  if (e.metadata !== undefined) {
    out += comma + '"metadata":' + writeCanonicalJson(e.metadata, plainStrings);
    comma = ",";
  }
  if (e.occurredAt !== undefined) {
    out += comma + '"occurredAt":' + writeCanonicalJson(e.occurredAt, plainStrings);
    comma = ",";
  }
  if (e.schemaVersion !== undefined) {
    out += comma + '"schemaVersion":' + writeCanonicalJson(e.schemaVersion, plainStrings);
    comma = ",";
  }
  if (e.streamId !== undefined) {
    out += comma + '"streamId":' + writeCanonicalJson(e.streamId, plainStrings);
    comma = ",";
  }
  if (e.streamType !== undefined) {
    out += comma + '"streamType":' + writeCanonicalJson(e.streamType, plainStrings);
    comma = ",";
  }
  if (e.streamVersion !== undefined) {
    out += comma + '"streamVersion":' + writeCanonicalJson(e.streamVersion, plainStrings);
    comma = ",";
  }
  if (e.tenantId !== undefined) {
    out += comma + '"tenantId":' + writeCanonicalJson(e.tenantId, plainStrings);
    comma = ",";
  }
  if (e.type !== undefined) out += comma + '"type":' + writeCanonicalJson(e.type, plainStrings);
  return out + "}";
}

/**
 * How many object members the values of the last canonicalContentJson held, nested ones included
 * (its ten keys not counted): what a walk of them would count, for a reader that checks a line
 * spells no key twice without walking the values again.
 */
export function membersWritten(): number {
  return members;
}

/** contentHash(e), the same hex digest. */
export function hashContent(e: HashedContent, plainStrings = false): string {
  return crypto.hash("sha256", canonicalContentJson(e, plainStrings), "hex");
}
