import { canonicalContentJson, hashContent, membersWritten } from "./canonicalContent.ts";
import { ANCHOR_FIELDS, deriveAuditFields, LINE_FIELDS, type AuditFields, type ExportRecord } from "./exportFormat.ts";
import { sha256Hex } from "./platform.ts";

/** A line that is not a record (bad JSON, duplicate keys, unknown kind, bad CSV row). */
export interface MalformedRecord {
  kind: "malformed";
  line: number;
  /** The sequence the line claims, when it can be read (it is named if it is the first bad one). */
  sequence?: number | undefined;
  message: string;
}

/** What the verifier takes: a header, end or checkpoint line, a malformed line, or an event line checked alone here (CheckedEvent). */
export type VerifiableRecord = ExportRecord | MalformedRecord | CheckedEvent;

// One export line as the verifier reads it: the JSON parsed once, and what can be checked of a line
// alone (its fields, its audit fields, its content hash) checked there, by the reader or by a
// worker thread (node/verifyExportFile.ts). What needs the lines before it (sequences, the chain,
// signatures) is the verifier's. This module needs only exportFormat.ts and the hashing: worker
// threads load it.

export const FIELDS = {
  header: new Set<string>(LINE_FIELDS.header),
  event: new Set<string>(LINE_FIELDS.event),
  /** The database's rows have no audit fields: those are derived for the export only. */
  logEvent: new Set<string>(LINE_FIELDS.event.filter((f) => f !== "audit")),
  omitted: new Set<string>(LINE_FIELDS.omitted),
  checkpoint: new Set<string>(LINE_FIELDS.checkpoint),
  genesis: new Set<string>(ANCHOR_FIELDS.genesis),
};

/** What is wrong with a record's fields (one it must not have, or one it lacks); null when it has exactly `fields`. */
export function fieldsProblem(record: object, fields: ReadonlySet<string>): string | null {
  let n = 0;
  for (const key in record) {
    if (!fields.has(key)) return `a field ${JSON.stringify(key)} that is not part of the format`;
    n++;
  }
  if (n === fields.size) return null;
  for (const key of fields) if (!Object.hasOwn(record, key)) return `no ${key}`;
  return null;
}

/**
 * An event line whose checks of the line alone passed: exactly its fields, audit fields derived
 * from its content, and a content hash that is the one recomputed from its content. It keeps what
 * the chain and the header's range and filter still need. The verifier takes its content hash as
 * recomputed and does not check it again.
 */
export class CheckedEvent {
  readonly kind = "event" as const;
  readonly sequence: number;
  readonly tenantId: string;
  readonly type: string;
  readonly occurredAt: string;
  readonly contentHash: string;
  readonly chainHash: string;
  constructor(sequence: number, tenantId: string, type: string, occurredAt: string, contentHash: string, chainHash: string) {
    this.sequence = sequence;
    this.tenantId = tenantId;
    this.type = type;
    this.occurredAt = occurredAt;
    this.contentHash = contentHash;
    this.chainHash = chainHash;
  }
}

const KINDS: ReadonlyArray<string> = ["header", "event", "omitted", "checkpoint", "end"];

export const DUPLICATE_KEY = "a key appears twice in one object (readers differ on which value counts)";

/** The record a line of an NDJSON export holds, as parsed (or why it is not one). */
export function recordOfJsonLine(line: string, n: number): VerifiableRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: "malformed", line: n, message: "not JSON" };
  }
  return recordOf(value, line, n);
}

function recordOf(value: unknown, line: string, n: number): VerifiableRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value) || typeof (value as { kind?: unknown }).kind !== "string") {
    return { kind: "malformed", line: n, message: "not a record (an object with a kind)" };
  }
  if (!KINDS.includes((value as { kind: string }).kind)) {
    return { kind: "malformed", line: n, message: `unknown kind ${JSON.stringify((value as { kind: string }).kind)}` };
  }
  if (hasDuplicateKey(line, value)) {
    const claimed = (value as { sequence?: unknown }).sequence;
    return { kind: "malformed", line: n, sequence: typeof claimed === "number" ? claimed : undefined, message: DUPLICATE_KEY };
  }
  return value as ExportRecord;
}

/**
 * recordOfJsonLine for the verifier: an event line that passes every check of a line alone comes
 * back as a CheckedEvent (its data, metadata and audit fields dropped once checked); any other line
 * as recordOfJsonLine gives it (the same record), for the verifier to check and name what is wrong.
 */
export function checkedRecordOfJsonLine(line: string, n: number): VerifiableRecord {
  if (line.startsWith(EVENT_LINE_START) && line.charCodeAt(line.length - 1) === 0x7d) {
    // The last `,"audit":{`, searched forwards (String#lastIndexOf is several times slower), from
    // where the audit member of a Keyplane line begins, unless it begins before that.
    const near = line.length > 1024 ? line.length - 1024 : 0;
    let at = line.indexOf(AUDIT_MEMBER, near);
    if (at === -1 && near > 0) at = line.indexOf(AUDIT_MEMBER);
    for (let later = at; later !== -1; later = line.indexOf(AUDIT_MEMBER, later + 1)) at = later;
    if (at > 0) {
      let head: unknown;
      try {
        head = JSON.parse(line.slice(0, at) + "}");
      } catch {
        head = undefined;
      }
      if (typeof head === "object" && head !== null && !Array.isArray(head)) {
        const record = checkedEventLine(line, n, head as Record<string, unknown>, at);
        if (record !== undefined) return record;
      }
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: "malformed", line: n, message: "not JSON" };
  }
  if (typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "event" && !Array.isArray(value)) {
    const e = value as Record<string, unknown>;
    if (checkableEvent(e) && fieldsProblem(e, FIELDS.event) === null && !hasDuplicateKey(line, e)) {
      const checked = checkedEvent(e, line.indexOf("\\") === -1, e.audit);
      if (checked) return checked;
    }
  }
  return recordOf(value, line, n);
}

// Keyplane writes an event line's members in one order, the audit fields last (readExportPage.ts).
const EVENT_LINE_START = '{"kind":"event",';
const AUDIT_MEMBER = ',"audit":{';

/**
 * An event line read as its head (the line up to its last `,"audit":{`, closed: already parsed)
 * and its audit member, so the audit fields are parsed only when they are not spelled exactly as
 * Keyplane spells the ones derived from the head. The head parsed as an object means the member
 * stands at the top level and the line is the head's members and then it: when the member's
 * value parses too, head + audit is what JSON.parse gives for the whole line, else (undefined)
 * the line is read whole. Whatever fails a check comes back as the record JSON.parse gives.
 */
function checkedEventLine(line: string, n: number, head: Record<string, unknown>, at: number): VerifiableRecord | undefined {
  // (the whole line has a field too many or too few, or of another type, when its head has)
  if (head.kind !== "event" || !checkableEvent(head) || fieldsProblem(head, FIELDS.logEvent) !== null) return withAudit(line, n, head, at);
  const plain = line.indexOf("\\") === -1;
  if (!plain || line.slice(at) !== keyplaneAuditMember(deriveAuditFields(head as never))) {
    // Spelled otherwise: parsed, and checked as the whole line's would be (recordOf found no key twice).
    const record = withAudit(line, n, head, at);
    return record === (head as unknown) ? (checkedEvent(head, plain, head.audit) ?? record) : record;
  }
  // The audit member is exactly the derived fields, and spells no key twice: only the head is counted.
  let text: string;
  try {
    text = canonicalContentJson(head as never, plain);
  } catch {
    return withAudit(line, n, head, at);
  }
  // The head's 14 keys and the members of their values (the content's are the ones written).
  if (!spellsEachKeyOnce(line.slice(0, at), FIELDS.logEvent.size + membersWritten())) return withAudit(line, n, head, at);
  if (sha256Hex(text) !== head.contentHash) return withAudit(line, n, head, at);
  return new CheckedEvent(
    head.sequence as number,
    head.tenantId as string,
    head.type as string,
    head.occurredAt as string,
    head.contentHash as string,
    head.chainHash as string,
  );
}

/** The record of the whole line: the head and its audit member's value (parsed here); undefined when that is not JSON. */
function withAudit(line: string, n: number, head: Record<string, unknown>, at: number): VerifiableRecord | undefined {
  let audit: unknown;
  try {
    audit = JSON.parse(line.slice(at + AUDIT_MEMBER.length - 1, -1));
  } catch {
    return undefined;
  }
  head.audit = audit;
  return recordOf(head, line, n);
}

/**
 * The end of an event line as readExportPage.ts writes it for these audit fields, from their
 * member on: each value as PostgreSQL prints jsonb (the line's strings need no escaping: it has no
 * backslash). Only a guess of Keyplane's spelling: a line spelled otherwise is parsed instead, and
 * whatever this spells is JSON whose value is the fields themselves.
 */
function keyplaneAuditMember(a: AuditFields): string {
  return (
    ',"audit":{"timestamp":' +
    jsonbText(a.timestamp) +
    ',"eventType":' +
    jsonbText(a.eventType) +
    ',"level":' +
    jsonbText(a.level) +
    ',"tenantId":' +
    jsonbText(a.tenantId) +
    ',"userId":' +
    jsonbText(a.userId) +
    ',"sourceIp":' +
    jsonbText(a.sourceIp) +
    ',"resource":' +
    jsonbText(a.resource) +
    ',"action":' +
    jsonbText(a.action) +
    ',"status":' +
    jsonbText(a.status) +
    ',"requestId":' +
    jsonbText(a.requestId) +
    ',"details":' +
    jsonbText(a.details) +
    "}}"
  );
}

/**
 * A JSON value (of strings needing no escaping) as jsonb's output spells it: keys by length, then
 * bytes; ", " and ": " between items. A number other than an integer is spelled as JSON.stringify
 * spells it, which PostgreSQL may not (1.0 stays 1.0 there): such a line is parsed instead.
 */
function jsonbText(value: unknown): string {
  if (typeof value === "string") return '"' + value + '"';
  if (typeof value !== "object" || value === null) return String(value);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ", " : "") + jsonbText(value[i]);
    return out + "]";
  }
  const keys = Object.keys(value).sort(byJsonbOrder);
  let out = "{";
  for (let i = 0; i < keys.length; i++) out += (i > 0 ? ', "' : '"') + keys[i] + '": ' + jsonbText((value as Record<string, unknown>)[keys[i]!]);
  return out + "}";
}
const byJsonbOrder = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

/**
 * Whether valid JSON text spells `members` object members, as many as its parsed value holds (no
 * key twice). Fast: one count of the quotes followed by a colon (after whitespace): every key's
 * closing quote, and rarely a quote inside or opening a string. That count is never below the keys
 * spelled, so when it equals `members` no key is spelled twice; when it is higher, the exact scan.
 */
function spellsEachKeyOnce(text: string, members: number): boolean {
  const quotesBeforeColons = text.match(QUOTE_COLON)?.length ?? 0;
  return quotesBeforeColons === members || (quotesBeforeColons > members && membersSpelledIn(text) === members);
}
const QUOTE_COLON = /"[ \t\n\r]*:/g;

/** The fields a CheckedEvent keeps have the types it holds them as. */
function checkableEvent(e: Record<string, unknown>): boolean {
  return (
    Number.isSafeInteger(e.sequence) &&
    typeof e.tenantId === "string" &&
    typeof e.type === "string" &&
    typeof e.occurredAt === "string" &&
    typeof e.contentHash === "string" &&
    typeof e.chainHash === "string"
  );
}

/** The event (its fields and keys already checked) as a CheckedEvent when its content hash and audit fields hold. */
function checkedEvent(e: Record<string, unknown>, plain: boolean, audit: unknown): CheckedEvent | null {
  let content: string;
  try {
    // Without a backslash in the line, no string parsed from it needs escaping.
    content = hashContent(e as never, plain);
  } catch {
    return null;
  }
  if (content !== e.contentHash) return null;
  if (!sameAuditFields(audit, deriveAuditFields(e as never))) return null;
  return new CheckedEvent(e.sequence as number, e.tenantId as string, e.type as string, e.occurredAt as string, e.contentHash, e.chainHash as string);
}

/** JSON.parse that refuses a key twice in one object. */
export function parseJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (hasDuplicateKey(text, value)) throw new Error(DUPLICATE_KEY);
  return value;
}

/**
 * Whether valid JSON text spells more object members than its parsed value holds: JSON.parse keeps
 * one member per key, so any repeated key shows as a lower count. A scan of the text (strings are
 * skipped with indexOf) and a walk of the value: no second parse, nothing kept.
 */
function hasDuplicateKey(text: string, value: unknown): boolean {
  return membersSpelledIn(text) !== membersIn(value);
}

/** Each string followed by ":" names a member (in valid JSON, `"` only delimits strings); those that begin before `end`. */
function membersSpelledIn(text: string, end = text.length): number {
  let members = 0;
  for (let open = text.indexOf('"'); open !== -1 && open < end; ) {
    let close = text.indexOf('"', open + 1);
    while (close !== -1 && isEscaped(text, close)) close = text.indexOf('"', close + 1);
    if (close === -1) break;
    let after = close + 1;
    for (let c = text.charCodeAt(after); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++after));
    if (text.charCodeAt(after) === 0x3a) members++;
    open = text.indexOf('"', after);
  }
  return members;
}

/** A quote preceded by an odd number of backslashes is part of the string. */
function isEscaped(text: string, quote: number): boolean {
  let backslashes = 0;
  while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++;
  return backslashes % 2 === 1;
}

/** Members of the parsed value's objects, nested ones included (no call per primitive: this runs per line). */
function membersIn(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  let members = 0;
  if (Array.isArray(value)) {
    for (const item of value) if (typeof item === "object" && item !== null) members += membersIn(item);
    return members;
  }
  for (const key in value) {
    members++;
    const member = (value as Record<string, unknown>)[key];
    if (typeof member === "object" && member !== null) members += membersIn(member);
  }
  return members;
}

/** Whether a line's audit fields are the ones derived from its content (every event: kept cheap). */
export function sameAuditFields(said: unknown, derived: AuditFields): boolean {
  if (typeof said !== "object" || said === null) return false;
  const s = said as Record<string, unknown>;
  let n = 0;
  for (const key in s) {
    n++;
    if (!(key in derived)) return false;
  }
  if (n !== 11) return false;
  for (const key of AUDIT_KEYS) {
    const a = s[key];
    const b = derived[key];
    if (a === b) continue;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || stable(a) !== stable(b)) return false;
  }
  return true;
}
const AUDIT_KEYS = [
  "timestamp",
  "eventType",
  "level",
  "tenantId",
  "userId",
  "sourceIp",
  "resource",
  "action",
  "status",
  "requestId",
  "details",
] as const satisfies ReadonlyArray<keyof AuditFields>;

/** JSON with sorted keys, to compare what a line says with what was signed. */
export function stable(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return "[" + value.map(stable).join(",") + "]";
  return (
    "{" +
    Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => JSON.stringify(k) + ":" + stable((value as Record<string, unknown>)[k]))
      .join(",") +
    "}"
  );
}
