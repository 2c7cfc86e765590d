import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { ExportLineReader } from "../exportLineReader.ts";
import type { VerifiableRecord } from "../exportLines.ts";

// An export read from a Node.js stream or open file, a chunk of whole lines at a time, through the
// portable line reader (exportLineReader.ts).

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
