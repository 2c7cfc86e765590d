import { CSV_COLUMNS, CSV_FILLED, recordCells, type AuditFields, type CsvColumn, type ExportRecord } from "./exportFormat.ts";
import { parseJson } from "./exportLines.ts";
import type { VerifiableRecord } from "./exportLines.ts";

// A CSV export's rows read back into the records they stand for (exportFormat.ts writes them),
// refusing any cell two CSV readers could read differently: strict RFC 4180 quoting, integers
// spelled one way, empty cells where the row's kind has none, repeated cells that agree.

/** The header row must name exactly the export's columns, in order: an extra column is a cell nobody checks. */
export function csvHeaderMatches(line: string): boolean {
  try {
    const columns = parseCsvRecord(line);
    return columns !== null && columns.length === CSV_COLUMNS.length && CSV_COLUMNS.every((c, i) => columns[i] === c);
  } catch {
    return false;
  }
}

/** The record a CSV row's cells stand for, or why it is not one (`malformed`, at line `n`). */
export function csvRecordOf(cells: string[], n: number): VerifiableRecord {
  if (cells.length !== CSV_COLUMNS.length)
    return { kind: "malformed", line: n, message: `${cells.length} fields where the header names ${CSV_COLUMNS.length}` };
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
