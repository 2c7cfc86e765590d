import type { Readable } from "node:stream";
import { CSV_COLUMNS, csvRowToRecord, type ExportRecord } from "./exportFormat.ts";
import type { VerifiableRecord } from "./verifyAuditRecords.ts";

/**
 * The records of an export file, NDJSON or CSV (told apart by the first line), one at a time: a
 * file of any size is verified in constant memory. Lines that are not records come back as
 * `malformed` for the verifier to report.
 */
export async function* readExportRecords(input: Readable): AsyncGenerator<VerifiableRecord> {
  let format: "ndjson" | "csv" | undefined;
  let columns: string[] = [];
  let pending = ""; // a CSV record whose quoted field runs over several lines
  let pendingStart = 0;
  let n = 0;
  try {
    for await (const batch of linesOf(input)) for (const line of batch) {
      n++;
      if (format === undefined) {
        if (line.trim() === "") continue;
        format = line.trimStart().startsWith("{") ? "ndjson" : "csv";
        if (format === "csv") {
          columns = parseCsvRecord(line.replace(/^\uFEFF/, "")) ?? [];
          if (columns[0] !== "kind" || !CSV_COLUMNS.every((c) => columns.includes(c))) {
            yield { kind: "malformed", line: n, message: "neither NDJSON nor the export's CSV (the first row must name the columns)" };
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
      const cells = parseCsvRecord(pending);
      if (cells === null) continue; // inside a quoted field: the record goes on
      pending = "";
      if (cells.length === 1 && cells[0] === "") continue;
      yield csvRecord(columns, cells, pendingStart);
    }
    if (pending !== "") yield { kind: "malformed", line: pendingStart, message: "a quoted CSV field is never closed" };
  } finally {
    input.destroy();
  }
}

/**
 * The lines of a byte stream (LF or CRLF) as UTF-8 strings, a chunk's worth at a time: one await per
 * chunk rather than per line (readline's iterator costs more per line than parsing it).
 */
async function* linesOf(input: Readable): AsyncGenerator<string[]> {
  let rest: Buffer | undefined;
  for await (const piece of input) {
    const chunk: Buffer = typeof piece === "string" ? Buffer.from(piece) : (piece as Buffer);
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    const lines: string[] = [];
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      lines.push(buf.toString("utf8", start, nl > start && buf[nl - 1] === 13 ? nl - 1 : nl));
      start = nl + 1;
    }
    rest = start < buf.length ? buf.subarray(start) : undefined;
    if (lines.length) yield lines;
  }
  if (rest) yield [rest.toString("utf8", 0, rest[rest.length - 1] === 13 ? rest.length - 1 : rest.length)];
}

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
  if (!["header", "event", "omitted", "checkpoint", "end"].includes((value as { kind: string }).kind)) {
    return { kind: "malformed", line: n, message: `unknown kind ${JSON.stringify((value as { kind: string }).kind)}` };
  }
  return value as ExportRecord;
}

function csvRecord(columns: string[], cells: string[], n: number): VerifiableRecord {
  if (cells.length !== columns.length) return { kind: "malformed", line: n, message: `${cells.length} fields where the header names ${columns.length}` };
  const row: Record<string, string> = {};
  columns.forEach((c, i) => (row[c] = cells[i]!));
  try {
    return csvRowToRecord(row);
  } catch (error) {
    return { kind: "malformed", line: n, message: (error as Error).message };
  }
}

/** RFC 4180 fields of one record; null when the text ends inside a quoted field. */
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
      // Anything between the closing quote and the next comma is kept (lenient, like most readers).
      const comma = text.indexOf(",", i);
      cells.push(value + (comma === -1 ? text.slice(i) : text.slice(i, comma)));
      if (comma === -1) return cells;
      i = comma + 1;
    } else {
      const comma = text.indexOf(",", i);
      if (comma === -1) {
        cells.push(text.slice(i));
        return cells;
      }
      cells.push(text.slice(i, comma));
      i = comma + 1;
    }
  }
}
