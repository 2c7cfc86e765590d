/**
 * A JSON value with every object's keys in the order PostgreSQL's jsonb keeps them (shorter keys
 * first, then bytewise), so that an event handed over from memory (the live feed) is, member for
 * member, what a read of the stored row gives.
 */
export function jsonbOrder<T>(value: T): T {
  if (Array.isArray(value)) return value.map(jsonbOrder) as T;
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>);
  entries.sort(([a], [b]) => compareKeys(a, b));
  const out: Record<string, unknown> = {};
  for (const [key, member] of entries) out[key] = jsonbOrder(member);
  return out as T;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the whole ASCII range, control characters included
const ASCII = /^[\x00-\x7f]*$/;

function compareKeys(a: string, b: string): number {
  if (ASCII.test(a) && ASCII.test(b)) return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length - y.length || Buffer.compare(x, y);
}
