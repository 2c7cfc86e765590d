import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { CSV_COLUMNS, CSV_FILLED, recordCells, type AuditFields, type CsvColumn, type ExportRecord } from "./exportFormat.ts";
import { checkedRecordOfJsonLine, parseJson, recordOfJsonLine } from "./exportLines.ts";
import { LineCursor } from "./platform.ts";
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
  for await (const batch of readExportBatches(input)) yield* batch;
}

/**
 * readExportRecords a chunk of the file at a time (one await per chunk, not per line). `checked`:
 * event lines that pass every check of a line alone come as CheckedEvents (exportLines.ts), for the
 * verifier; without it every record is the line's as parsed.
 */
export async function* readExportBatches(input: ExportInput, { checked = false }: { checked?: boolean } = {}): AsyncGenerator<VerifiableRecord[]> {
  const reader = new ExportLineReader(checked);
  try {
    for await (const chunk of wholeLines(input)) {
      const records: VerifiableRecord[] = [];
      for (const lines of chunk) reader.read(lines, 0, lines.length, records);
      if (records.length) yield records;
      if (reader.stopped) return;
    }
    const records: VerifiableRecord[] = [];
    reader.end(records);
    if (records.length) yield records;
  } finally {
    await closeInput(input);
  }
}

/** Where an export is read from: a stream (stdin, a test's text), or a file opened for reading. */
export type ExportInput = Readable | FileHandle;

const CHUNK_BYTES = 1 << 20;

/**
 * The bytes of an export a chunk at a time. A file is read a megabyte at a time, the next chunk
 * while this one is checked, into three buffers in turn (a fresh megabyte buffer per read costs
 * about as much as the read, in page faults): a chunk stays as it is until the next-but-one is
 * taken (its buffer is then read into), and no longer.
 */
export async function* chunksOf(input: ExportInput): AsyncGenerator<Buffer> {
  if (input instanceof Readable) {
    for await (const piece of input) yield typeof piece === "string" ? Buffer.from(piece) : (piece as Buffer);
    return;
  }
  const buffers = [Buffer.allocUnsafeSlow(CHUNK_BYTES), Buffer.allocUnsafeSlow(CHUNK_BYTES), Buffer.allocUnsafeSlow(CHUNK_BYTES)];
  let i = 0;
  let reading = input.read(buffers[0]!, 0, CHUNK_BYTES, null);
  try {
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) return;
      const chunk = buffers[i]!.subarray(0, bytesRead);
      i = (i + 1) % buffers.length;
      reading = input.read(buffers[i]!, 0, CHUNK_BYTES, null);
      yield chunk;
    }
  } finally {
    // (a read still going when the reader stops: let it end before the file is closed)
    await reading.catch(() => undefined);
  }
}

export async function closeInput(input: ExportInput): Promise<void> {
  if (input instanceof Readable) input.destroy();
  else await input.close();
}

/** The records of the lines of a file, read in order (a CSV record may run over several lines). */
export class ExportLineReader {
  format: "ndjson" | "csv" | undefined;
  /** The first line is neither NDJSON nor the export's CSV header: nothing after it is read. */
  stopped = false;
  /** Lines read so far. */
  n = 0;
  private pending = ""; // a CSV record whose quoted field runs over several lines
  private pendingStart = 0;
  private readonly ofJsonLine: (line: string, n: number) => VerifiableRecord;

  constructor(checked: boolean) {
    this.ofJsonLine = checked ? checkedRecordOfJsonLine : recordOfJsonLine;
  }

  /** Appends the records of the lines of bytes[start, end) (whole lines) to `out`. */
  read(bytes: Uint8Array, start: number, end: number, out: VerifiableRecord[]): void {
    const lines = new LineCursor(bytes, start, end);
    for (let line = lines.next(); line !== undefined; line = lines.next()) {
      if (this.stopped) return;
      const n = ++this.n;
      if (line === null) {
        out.push({ kind: "malformed", line: n, message: "not UTF-8 text" });
        continue;
      }
      if (this.format === undefined) {
        if (line.trim() === "") continue;
        this.format = line.trimStart().startsWith("{") ? "ndjson" : "csv";
        if (this.format === "csv") {
          if (!sameColumns(line.replace(/^\uFEFF/, ""))) {
            out.push({ kind: "malformed", line: n, message: "neither NDJSON nor the export's CSV (the first row must name exactly the export's columns)" });
            this.stopped = true;
          }
          continue;
        }
      }
      if (this.format === "ndjson") {
        if (line.trim() === "") continue;
        out.push(this.ofJsonLine(line, n));
        continue;
      }
      if (this.pending === "") this.pendingStart = n;
      this.pending = this.pending === "" ? line : `${this.pending}\n${line}`;
      let cells: string[] | null;
      try {
        cells = parseCsvRecord(this.pending);
      } catch (error) {
        this.pending = "";
        out.push({ kind: "malformed", line: this.pendingStart, message: (error as Error).message });
        continue;
      }
      if (cells === null) continue; // inside a quoted field: the record goes on
      this.pending = "";
      if (cells.length === 1 && cells[0] === "") continue;
      out.push(csvRecord(cells, this.pendingStart));
    }
  }

  /** The end of the file: a CSV record still open is one whose quoted field never closes. */
  end(out: VerifiableRecord[]): void {
    if (this.pending !== "" && !this.stopped) out.push({ kind: "malformed", line: this.pendingStart, message: "a quoted CSV field is never closed" });
  }
}

/**
 * A byte stream in buffers of whole lines, a chunk's worth at a time: one await per chunk rather
 * than per line (readline's iterator costs more per line than parsing it). A line that runs over
 * chunks comes in a buffer of its own, before the rest of the chunk its end is in.
 */
async function* wholeLines(input: ExportInput): AsyncGenerator<Buffer[]> {
  // The start of a line that goes on in the next chunk: a part of this chunk (valid until the
  // next-but-one is read: chunksOf) or a copy.
  let rest: Buffer | undefined;
  for await (const chunk of chunksOf(input)) {
    const first = chunk.indexOf(10);
    if (first === -1) {
      rest = rest ? Buffer.concat([rest, chunk]) : chunk;
      continue;
    }
    const buffers: Buffer[] = [];
    let from = 0;
    if (rest) {
      buffers.push(Buffer.concat([rest, chunk.subarray(0, first + 1)]));
      from = first + 1;
    }
    const last = chunk.lastIndexOf(10);
    if (last + 1 > from) buffers.push(chunk.subarray(from, last + 1));
    rest = last + 1 < chunk.length ? chunk.subarray(last + 1) : undefined;
    yield buffers;
  }
  if (rest) yield [rest];
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
