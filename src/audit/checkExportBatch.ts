import { CheckedEvent, checkedRecordOfJsonLine, recordOfJsonLine } from "./exportLines.ts";
import { LineCursor } from "./platform.ts";
import type { VerifiableRecord } from "./exportLines.ts";

// A batch of an NDJSON export's lines checked alone (exportLines.ts), on the main thread or in a
// worker thread (node/verifyExportWorker.ts), and what a worker sends back: each checked event's
// fields in one flat array (a structured clone of strings and numbers, no object per line), and the
// text of any other line, which the main thread reads again into the same record (recordOfJsonLine).

const CHECKED = 0;
const OTHER = 1;
const NOT_UTF8 = 2;

/** The records of bytes (whole lines of an NDJSON export) whose first line is line `first`. */
export function checkJsonLines(bytes: Uint8Array, first: number): VerifiableRecord[] {
  const lines = new LineCursor(bytes, 0, bytes.byteLength);
  const records: VerifiableRecord[] = [];
  for (let n = first, line = lines.next(); line !== undefined; n++, line = lines.next()) {
    if (line === null) records.push(notUtf8(n));
    else if (line.trim() !== "") records.push(checkedRecordOfJsonLine(line, n));
  }
  return records;
}

/** checkJsonLines as a worker sends it back (decodeCheckedLines reads it). */
export function checkJsonLinesEncoded(bytes: Uint8Array, first: number): unknown[] {
  const lines = new LineCursor(bytes, 0, bytes.byteLength);
  const out: unknown[] = [];
  for (let n = first, line = lines.next(); line !== undefined; n++, line = lines.next()) {
    if (line === null) {
      out.push(NOT_UTF8, n);
      continue;
    }
    if (line.trim() === "") continue;
    const r = checkedRecordOfJsonLine(line, n);
    if (r instanceof CheckedEvent) out.push(CHECKED, r.sequence, r.tenantId, r.type, r.occurredAt, r.contentHash, r.chainHash);
    else out.push(OTHER, n, line);
  }
  return out;
}

/** The records checkJsonLines gives for the same lines. */
export function decodeCheckedLines(data: ReadonlyArray<unknown>): VerifiableRecord[] {
  const records: VerifiableRecord[] = [];
  for (let i = 0; i < data.length; ) {
    switch (data[i]) {
      case CHECKED:
        records.push(
          new CheckedEvent(
            data[i + 1] as number,
            data[i + 2] as string,
            data[i + 3] as string,
            data[i + 4] as string,
            data[i + 5] as string,
            data[i + 6] as string,
          ),
        );
        i += 7;
        break;
      case OTHER:
        records.push(recordOfJsonLine(data[i + 2] as string, data[i + 1] as number));
        i += 3;
        break;
      case NOT_UTF8:
        records.push(notUtf8(data[i + 1] as number));
        i += 2;
        break;
      default:
        throw new Error(`checked lines: unknown entry ${String(data[i])}`);
    }
  }
  return records;
}

const notUtf8 = (n: number): VerifiableRecord => ({ kind: "malformed", line: n, message: "not UTF-8 text" });

/** How many lines bytes holds (LFs, and one more when it does not end with one). */
export function countLines(bytes: Uint8Array): number {
  let n = 0;
  let from = 0;
  for (let nl = bytes.indexOf(10, from); nl !== -1; nl = bytes.indexOf(10, from)) {
    n++;
    from = nl + 1;
  }
  return from < bytes.byteLength ? n + 1 : n;
}
