import { isUtf8 } from "node:buffer";
import type { Readable } from "node:stream";
import { CSV_COLUMNS, CSV_FILLED, recordCells, type AuditFields, type CsvColumn, type ExportRecord } from "./exportFormat.ts";
import type { VerifiableRecord } from "./verifyAuditRecords.ts";

// Reading is where a file can mean two things to two readers: a key twice in one object (JSON.parse
// keeps the last value, other readers the first), a CSV cell nobody reads, text after a closing
// quote, bytes that are not UTF-8. Each is refused as `malformed`, so what the verifier checks is
// what any reader of the file sees.

/**
 * The records of an export file, NDJSON or CSV (told apart by the first line), one at a time: a
 * file of any size is verified in constant memory. Lines that are not records come back as
 * `malformed` for the verifier to report.
 */
export async function* readExportRecords(input: Readable): AsyncGenerator<VerifiableRecord> {
  let format: "ndjson" | "csv" | undefined;
  let pending = ""; // a CSV record whose quoted field runs over several lines
  let pendingStart = 0;
  let n = 0;
  try {
    for await (const batch of linesOf(input)) for (const line of batch) {
      n++;
      if (line === null) {
        yield { kind: "malformed", line: n, message: "not UTF-8 text" };
        continue;
      }
      if (format === undefined) {
        if (line.trim() === "") continue;
        format = line.trimStart().startsWith("{") ? "ndjson" : "csv";
        if (format === "csv") {
          if (!sameColumns(line.replace(/^\uFEFF/, ""))) {
            yield { kind: "malformed", line: n, message: "neither NDJSON nor the export's CSV (the first row must name exactly the export's columns)" };
            return;
          }
          continue;
        }
      }
      if (format === "ndjson") {
        if (line.trim() === "") continue;
        yield parseJsonLine(line, n);
        continue;
      }
      if (pending === "") pendingStart = n;
      pending = pending === "" ? line : `${pending}\n${line}`;
      let cells: string[] | null;
      try {
        cells = parseCsvRecord(pending);
      } catch (error) {
        pending = "";
        yield { kind: "malformed", line: pendingStart, message: (error as Error).message };
        continue;
      }
      if (cells === null) continue; // inside a quoted field: the record goes on
      pending = "";
      if (cells.length === 1 && cells[0] === "") continue;
      yield csvRecord(cells, pendingStart);
    }
    if (pending !== "") yield { kind: "malformed", line: pendingStart, message: "a quoted CSV field is never closed" };
  } finally {
    input.destroy();
  }
}

/**
 * The lines of a byte stream (LF or CRLF) as UTF-8 strings (null for a line that is not UTF-8), a
 * chunk's worth at a time: one await per chunk rather than per line (readline's iterator costs more
 * per line than parsing it).
 */
async function* linesOf(input: Readable): AsyncGenerator<Array<string | null>> {
  let rest: Buffer | undefined;
  const text = (buf: Buffer, start: number, end: number) => (isUtf8(buf.subarray(start, end)) ? buf.toString("utf8", start, end) : null);
  for await (const piece of input) {
    const chunk: Buffer = typeof piece === "string" ? Buffer.from(piece) : (piece as Buffer);
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    const lines: Array<string | null> = [];
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      lines.push(text(buf, start, nl > start && buf[nl - 1] === 13 ? nl - 1 : nl));
      start = nl + 1;
    }
    rest = start < buf.length ? buf.subarray(start) : undefined;
    if (lines.length) yield lines;
  }
  if (rest) yield [text(rest, 0, rest[rest.length - 1] === 13 ? rest.length - 1 : rest.length)];
}

const KINDS: ReadonlyArray<string> = ["header", "event", "omitted", "checkpoint", "end"];

function parseJsonLine(line: string, n: number): VerifiableRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: "malformed", line: n, message: "not JSON" };
  }
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

const DUPLICATE_KEY = "a key appears twice in one object (readers differ on which value counts)";

/** JSON.parse that refuses a key twice in one object. */
function parseJson(text: string): unknown {
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

/** Each string followed by ":" names a member (in valid JSON, `"` only delimits strings). */
function membersSpelledIn(text: string): number {
  let members = 0;
  for (let open = text.indexOf('"'); open !== -1; ) {
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

/** The header row must name exactly the export's columns, in order: an extra column is a cell nobody checks. */
function sameColumns(line: string): boolean {
  try {
    const columns = parseCsvRecord(line);
    return columns !== null && columns.length === CSV_COLUMNS.length && CSV_COLUMNS.every((c, i) => columns[i] === c);
  } catch {
    return false;
  }
}

function csvRecord(cells: string[], n: number): VerifiableRecord {
  if (cells.length !== CSV_COLUMNS.length) return { kind: "malformed", line: n, message: `${cells.length} fields where the header names ${CSV_COLUMNS.length}` };
  const row = {} as Record<CsvColumn, string>;
  CSV_COLUMNS.forEach((c, i) => (row[c] = cells[i]!));
  try {
    return csvRowToRecord(row);
  } catch (error) {
    return { kind: "malformed", line: n, sequence: INTEGER.test(row.sequence) ? Number(row.sequence) : undefined, message: (error as Error).message };
  }
}

/** An integer as Keyplane writes one: "1e1", "010" or "12.0" would be read differently by different readers. */
const INTEGER = /^(0|-?[1-9][0-9]{0,15})$/;

/** Rebuilds the record a CSV row stands for (the inverse of the export's CSV rows), refusing cells it would not read. */
function csvRowToRecord(row: Record<CsvColumn, string>): ExportRecord {
  const int = (name: CsvColumn) => {
    if (!INTEGER.test(row[name]) || !Number.isSafeInteger(Number(row[name]))) throw new Error(`column ${name}: not an integer`);
    return Number(row[name]);
  };
  const json = (name: CsvColumn) => {
    try {
      return parseJson(row[name]);
    } catch (error) {
      throw new Error(`column ${name}: ${error instanceof SyntaxError ? "not JSON" : (error as Error).message}`);
    }
  };
  const kind = row.kind;
  if (kind === "event" || kind === "omitted") {
    const stray = CSV_COLUMNS.find((c) => row[c] !== "" && !CSV_FILLED[kind].includes(c));
    if (stray) throw new Error(`column ${stray}: must be empty in ${kind === "event" ? "an event" : "an omitted"} row`);
  }
  switch (kind) {
    case "event":
      return {
        kind: "event",
        sequence: int("sequence"),
        eventId: row.eventId,
        tenantId: row.tenantId,
        streamType: row.streamType,
        streamId: row.streamId,
        streamVersion: int("streamVersion"),
        type: row.type,
        schemaVersion: int("schemaVersion"),
        occurredAt: row.occurredAt,
        data: json("data"),
        metadata: json("metadata"),
        contentHash: row.contentHash,
        chainHash: row.chainHash,
        // Without its audit cell the row is not what Keyplane wrote: the verifier refuses it.
        ...(row.audit !== "" ? { audit: json("audit") as AuditFields } : {}),
      };
    case "omitted":
      return { kind: "omitted", sequence: int("sequence"), contentHash: row.contentHash, chainHash: row.chainHash };
    case "header":
    case "checkpoint":
    case "end": {
      const record = json("record") as Extract<ExportRecord, { kind: "header" | "checkpoint" | "end" }>;
      if (record?.kind !== kind) throw new Error("column record: does not match the row's kind");
      const cells = recordCells(record);
      const differs = CSV_COLUMNS.find((c) => c !== "record" && row[c] !== (cells[c] ?? ""));
      if (differs) throw new Error(`column ${differs}: says something else than the record (or must be empty)`);
      return record;
    }
    default:
      throw new Error(`unknown kind ${JSON.stringify(kind)}`);
  }
}

/**
 * RFC 4180 fields of one record; null when the text ends inside a quoted field. Throws on a quote
 * an RFC 4180 reader would not accept (text after a closing quote, a quote in an unquoted field):
 * lenient readers differ on what such a cell says.
 */
export function parseCsvRecord(text: string): string[] | null {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = "";
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q === -1) return null;
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      cells.push(value);
      if (i === text.length) return cells;
      if (text[i] !== ",") throw new Error("text after a quoted CSV field's closing quote");
      i++;
    } else {
      const comma = text.indexOf(",", i);
      const cell = comma === -1 ? text.slice(i) : text.slice(i, comma);
      if (cell.includes('"')) throw new Error("a quote inside an unquoted CSV field");
      cells.push(cell);
      if (comma === -1) return cells;
      i = comma + 1;
    }
  }
}
