import type { HashedContent } from "./hashing.ts";
import { sha256Hex } from "./platform.ts";

// canonicalJson and contentHash for the verifier, which hashes every event of an export: the same
// bytes (test/unit/canonicalJson.test.ts holds them equal on varied inputs), written faster.
//  - The content's ten keys are written in their sorted order, with no object built to hold them.
//  - A string is quoted as it is unless it holds a character JSON escapes (one regular expression
//    test rather than a JSON.stringify call each); a caller that knows no string needs escaping
//    (it parsed them from JSON text without a backslash) says so and skips even that test.
//  - An object's keys are sorted in place by insertion (most objects have a few keys).
// The append path keeps canonicalJson.ts, which is the specification's reading of RFC 8785.

/** A character JSON.stringify escapes: `"`, `\`, a control character, or a surrogate (paired or lone: the slow path tells). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what canonical JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

const quote = (text: string, plain: boolean): string => (plain || !NEEDS_ESCAPE.test(text) ? '"' + text + '"' : JSON.stringify(text));

/**
 * What goes before a member's value: `{"key":` for the first, `,"key":` for the others, and the
 * same with the opening quote of a string value (`{"key":"`, `,"key":"`). Events repeat the same few
 * dozen keys: these are kept, up to a bound. (Fewer, longer pieces: the text is a tree of the
 * pieces concatenated, which hashing flattens at a cost per piece.)
 */
type KeyPieces = readonly [first: string, next: string, firstOpening: string, nextOpening: string];
const keyPieces = new Map<string, KeyPieces>();
function piecesOf(key: string): KeyPieces {
  let pieces = keyPieces.get(key);
  if (pieces === undefined) {
    const quoted = JSON.stringify(key) + ":";
    pieces = ["{" + quoted, "," + quoted, "{" + quoted + '"', "," + quoted + '"'];
    if (keyPieces.size < 10_000 && key.length <= 64) keyPieces.set(key, pieces);
  }
  return pieces;
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
        if (value.length === 0) return "[]";
        let out = "";
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (typeof item === "string" && (plainStrings || !NEEDS_ESCAPE.test(item))) out += (i > 0 ? ',"' : '["') + item + '"';
          else out += (i > 0 ? "," : "[") + (item === undefined ? "null" : writeCanonicalJson(item, plainStrings));
        }
        return out + "]";
      }
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      members += keys.length;
      sortKeys(keys);
      let out = "";
      for (let i = 0; i < keys.length; i++) {
        const member = record[keys[i]!];
        if (member !== undefined) out = withMember(out, piecesOf(keys[i]!), member, plainStrings);
      }
      return out.length > 0 ? out + "}" : "{}";
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
  let out = "";
  if (e.data !== undefined) out = withMember(out, CONTENT_KEYS.data, e.data, plainStrings);
  if (e.eventId !== undefined) out = withMember(out, CONTENT_KEYS.eventId, e.eventId, plainStrings);
  if (e.metadata !== undefined) out = withMember(out, CONTENT_KEYS.metadata, e.metadata, plainStrings);
  if (e.occurredAt !== undefined) out = withMember(out, CONTENT_KEYS.occurredAt, e.occurredAt, plainStrings);
  if (e.schemaVersion !== undefined) out = withMember(out, CONTENT_KEYS.schemaVersion, e.schemaVersion, plainStrings);
  if (e.streamId !== undefined) out = withMember(out, CONTENT_KEYS.streamId, e.streamId, plainStrings);
  if (e.streamType !== undefined) out = withMember(out, CONTENT_KEYS.streamType, e.streamType, plainStrings);
  if (e.streamVersion !== undefined) out = withMember(out, CONTENT_KEYS.streamVersion, e.streamVersion, plainStrings);
  if (e.tenantId !== undefined) out = withMember(out, CONTENT_KEYS.tenantId, e.tenantId, plainStrings);
  if (e.type !== undefined) out = withMember(out, CONTENT_KEYS.type, e.type, plainStrings);
  return out.length > 0 ? out + "}" : "{}";
}

const CONTENT_KEYS = {
  data: piecesOf("data"),
  eventId: piecesOf("eventId"),
  metadata: piecesOf("metadata"),
  occurredAt: piecesOf("occurredAt"),
  schemaVersion: piecesOf("schemaVersion"),
  streamId: piecesOf("streamId"),
  streamType: piecesOf("streamType"),
  streamVersion: piecesOf("streamVersion"),
  tenantId: piecesOf("tenantId"),
  type: piecesOf("type"),
} satisfies Record<keyof HashedContent, KeyPieces>;

/** An object's members so far (empty: none yet) and then this one, whose key's pieces these are. */
function withMember(out: string, pieces: KeyPieces, value: unknown, plainStrings: boolean): string {
  const next = out.length > 0 ? 1 : 0;
  if (typeof value === "string" && (plainStrings || !NEEDS_ESCAPE.test(value))) return out + pieces[2 + next]! + value + '"';
  return out + pieces[next]! + writeCanonicalJson(value, plainStrings);
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
  return sha256Hex(canonicalContentJson(e, plainStrings));
}
