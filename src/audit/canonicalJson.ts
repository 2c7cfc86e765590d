// RFC 8785 (JSON Canonicalization Scheme) for the JSON values events hold: object keys sorted by
// UTF-16 code units, no insignificant whitespace, numbers and strings serialized as ECMAScript does.
// Auditors re-compute content hashes from an export with this function alone. Written as plain
// loops (no map/filter/join chains): the verifier runs it over every event of an export.
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON has no representation for " + value);
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ",";
          const item: unknown = value[i];
          out += item === undefined ? "null" : canonicalJson(item);
        }
        return out + "]";
      }
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      let out = "{";
      for (const key of keys) {
        const member = record[key];
        if (member === undefined) continue;
        if (out.length > 1) out += ",";
        out += quotedKey(key) + canonicalJson(member);
      }
      return out + "}";
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

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
