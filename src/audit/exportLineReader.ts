import { checkedRecordOfJsonLine, recordOfJsonLine } from "./exportLines.ts";
import { LineCursor } from "./platform.ts";
import { csvHeaderMatches, csvRecordOf, parseCsvRecord } from "./readCsvRecord.ts";
import type { VerifiableRecord } from "./exportLines.ts";

// Reading is where a file can mean two things to two readers: a key twice in one object (JSON.parse
// keeps the last value, other readers the first), a CSV cell nobody reads, text after a closing
// quote, bytes that are not UTF-8. Each is refused as `malformed`, so what the verifier checks is
// what any reader of the file sees.
//
// The reader takes bytes, not a stream: Node's file reader (node/readExportFile.ts) and worker
// threads feed it here, a browser would feed it the same way.

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
          if (!csvHeaderMatches(line.replace(/^\uFEFF/, ""))) {
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
      out.push(csvRecordOf(cells, this.pendingStart));
    }
  }

  /** The end of the file: a CSV record still open is one whose quoted field never closes. */
  end(out: VerifiableRecord[]): void {
    if (this.pending !== "" && !this.stopped) out.push({ kind: "malformed", line: this.pendingStart, message: "a quoted CSV field is never closed" });
  }
}
