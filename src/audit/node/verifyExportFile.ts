import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { JSONWebKeySet } from "jose";
import { checkJsonLines, countLines, decodeCheckedLines } from "../checkExportBatch.ts";
import { ExportLineReader } from "../exportLineReader.ts";
import type { VerifiableRecord } from "../exportLines.ts";
import type { EndRecord, HeaderRecord } from "../exportFormat.ts";
import { verifyRecordBatches, type VerificationReport } from "../verifyAuditRecords.ts";
import { chunksOf, closeInput, readExportBatches, type ExportInput } from "./readExportFile.ts";

// `keyplane audit verify`: an export file verified at the speed of its hashes. Each line is parsed
// once and checked alone where it is read (its fields, its audit fields, its content hash:
// exportLines.ts); with threads to spare, batches of lines are checked by worker threads, in any
// order, and the main thread follows the chain through them in order (chain_n needs chain_n-1:
// that part stays sequential, and is a hash of 140 bytes per event). Same report, same first bad
// sequence, as verifyAuditRecords over readExportRecords: the checks are the verifier's.

export interface VerifyFileOptions {
  /** The JWKS to check signatures against; without it they are reported unchecked. */
  keys?: JSONWebKeySet;
  /**
   * Threads that check lines, the main thread included: 1 (or 0) checks every line on the main
   * thread (one core). Default: defaultVerifyThreads(). A CSV export is read on the main thread.
   */
  threads?: number;
  /** Bytes of lines per batch a thread checks at a time (tests make them small). */
  batchBytes?: number;
  /** Filled in as it goes: batches of lines checked, how many of them by worker threads, workers started. */
  stats?: VerifyFileStats;
  /**
   * Filled in as it goes: the header and end lines read. Proven only when the report is ok (the
   * verifier holds the header to what the end line signs); verifyExportChain links files by them.
   */
  lines?: ExportFileLines;
}

export interface ExportFileLines {
  header?: HeaderRecord;
  end?: EndRecord;
}

export interface VerifyFileStats {
  batches: number;
  byWorkers: number;
  workersReady: number;
}

/** More threads than this add little: the main thread's share (the chain, reading) becomes the bound. */
const MAX_DEFAULT_THREADS = 8;
const BATCH_BYTES = 1 << 20;

/** The cores, at most MAX_DEFAULT_THREADS: the main thread and one worker per other core. */
export const defaultVerifyThreads = (): number => Math.max(1, Math.min(availableParallelism(), MAX_DEFAULT_THREADS));

/** Verifies an export file (NDJSON or CSV), read to its end or its first problem; closes the input. */
export async function verifyExportFile(input: ExportInput, options: VerifyFileOptions = {}): Promise<VerificationReport> {
  const threads = Math.floor(options.threads ?? defaultVerifyThreads());
  const stats = options.stats ?? { batches: 0, byWorkers: 0, workersReady: 0 };
  const batches = threads > 1 ? checkedBatches(input, threads - 1, options.batchBytes ?? BATCH_BYTES, stats) : readExportBatches(input, { checked: true });
  const read = options.lines ? noting(batches, options.lines) : batches;
  try {
    return await verifyRecordBatches(read, { source: "export", keys: options.keys });
  } finally {
    await read.return(undefined);
    await batches.return(undefined);
    await closeInput(input); // (closed already, unless the batches were never read)
  }
}

/** The batches as they come, noting the header line (the file's first) and the end line (its last). */
async function* noting(batches: AsyncGenerator<VerifiableRecord[]>, lines: ExportFileLines): AsyncGenerator<VerifiableRecord[]> {
  for await (const batch of batches) {
    const first = batch[0];
    if (!lines.header && first?.kind === "header") lines.header = first;
    const last = batch.at(-1);
    if (last?.kind === "end") lines.end = last;
    yield batch;
  }
}

interface Batch {
  id: number;
  bytes: Uint8Array;
  /** The line number of its first line. */
  first: number;
}

/**
 * The records of the file in order, batch by batch (readExportBatches with `checked`): the lines
 * before the format is known, and a CSV file's, on this thread; an NDJSON file's batches by the
 * workers and, when they all have work queued, by this thread too.
 */
async function* checkedBatches(input: ExportInput, workers: number, batchBytes: number, stats: VerifyFileStats): AsyncGenerator<VerifiableRecord[]> {
  const chunks = chunksOf(input);
  // The file from `at` on, as far as it was read: the last chunk (valid until the next-but-one is
  // read: chunksOf), or a copy.
  let unread: Buffer | undefined;
  let at = 0;
  let ended = false;
  /**
   * The next whole lines of the file, batchBytes of them or a line more, undefined at its end: in
   * memory of their own, shared (a worker reads them where they are, not a copy).
   */
  const read = async (): Promise<Uint8Array | undefined> => {
    for (;;) {
      const left = unread ? unread.length - at : 0;
      if (left > 0 && (left >= batchBytes || ended)) {
        const nl = left >= batchBytes ? unread!.indexOf(10, at + batchBytes - 1) : -1;
        const end = nl !== -1 ? nl + 1 : ended ? unread!.length : -1;
        if (end !== -1) {
          const bytes = new Uint8Array(new SharedArrayBuffer(end - at));
          bytes.set(unread!.subarray(at, end));
          at = end;
          return bytes;
        }
      }
      if (ended) return undefined;
      const r = await chunks.next();
      if (r.done) {
        ended = true;
        continue;
      }
      unread = left > 0 ? Buffer.concat([unread!.subarray(at), r.value]) : r.value;
      at = 0;
    }
  };

  const reader = new ExportLineReader(true);
  const pool = new CheckerPool(workers, stats);
  try {
    // Until the first record tells the format, and all of a CSV file (a record may run over
    // several lines): the reader, on this thread.
    while (reader.format !== "ndjson" && !reader.stopped) {
      const bytes = await read();
      if (!bytes) break;
      const records: VerifiableRecord[] = [];
      reader.read(bytes, 0, bytes.byteLength, records);
      if (records.length) yield records;
    }
    if (reader.format !== "ndjson" || reader.stopped) {
      const records: VerifiableRecord[] = [];
      reader.end(records);
      if (records.length) yield records;
      return;
    }

    // NDJSON: each line stands alone. Batches are read ahead, checked by whichever thread is free,
    // and handed on in order: two queued per worker, and a few more that this thread checks while
    // it waits for a worker's (a worker given less of the CPU than this thread does not hold it up).
    const ahead = workers * 2 + 8;
    const queued: Batch[] = [];
    let first = reader.n + 1;
    let readSoFar = 0;
    let handedOn = 0;
    let reading: Promise<void> | undefined;
    let readError: { error: unknown } | undefined;
    let wakeUp: (() => void) | undefined;
    const wake = () => {
      const w = wakeUp;
      wakeUp = undefined;
      w?.();
    };
    pool.onChange = wake;
    for (;;) {
      if (readError) throw readError.error;
      if (!reading && !ended && readSoFar - handedOn < ahead) {
        reading = read().then(
          (bytes) => {
            reading = undefined;
            if (!bytes) return;
            queued.push({ id: readSoFar++, bytes, first });
            first += countLines(bytes);
          },
          (error: unknown) => {
            reading = undefined;
            readError = { error };
          },
        );
        void reading.finally(wake);
      }
      pool.take(queued);
      const done = pool.done.get(handedOn);
      if (done) {
        pool.done.delete(handedOn++);
        stats.batches++;
        if (!Array.isArray(done)) stats.byWorkers++;
        const records = Array.isArray(done) ? done : decodeCheckedLines(done.data);
        if (records.length) yield records;
        continue;
      }
      const mine = queued.shift();
      if (mine) {
        // Every worker has its share queued: this thread checks the next batch itself.
        pool.done.set(mine.id, checkJsonLines(mine.bytes, mine.first));
        continue;
      }
      if (ended && !reading && handedOn === readSoFar) return;
      await new Promise<void>((resolve) => (wakeUp = resolve));
    }
  } finally {
    await pool.close();
    await chunks.return(undefined);
    await closeInput(input);
  }
}

const WORKER = new URL(import.meta.url.endsWith(".ts") ? "./verifyExportWorker.ts" : "./verifyExportWorker.js", import.meta.url);

/**
 * Worker threads that check batches of lines, two batches each at a time (one to start on when
 * the other is done), started when there is a first batch for them and given batches once they
 * are loaded (until then the main thread checks them). A worker that fails (it cannot start, or
 * it dies) gives its batches back to the queue: the main thread checks them.
 */
class CheckerPool {
  /** Results by batch id: this thread's records, or a worker's encoded lines. */
  readonly done = new Map<number, VerifiableRecord[] | { data: unknown[] }>();
  onChange: () => void = () => {};
  private workers: Array<{ worker: Worker; batches: Map<number, Batch>; alive: boolean; ready: boolean }> | undefined;
  private returned: Batch[] = [];

  constructor(
    private readonly size: number,
    private readonly stats: VerifyFileStats,
  ) {}

  /** Gives queued batches (in order) to workers with room for them; batches of failed workers go first. */
  take(queue: Batch[]): void {
    if (this.returned.length) {
      queue.unshift(...this.returned.sort((a, b) => a.id - b.id));
      this.returned = [];
    }
    if (queue.length === 0 || this.size === 0) return;
    this.workers ??= Array.from({ length: this.size }, () => this.start());
    for (const w of this.workers) {
      while (w.ready && w.alive && w.batches.size < 2 && queue.length) {
        const batch = queue.shift()!;
        w.batches.set(batch.id, batch);
        w.worker.postMessage({ id: batch.id, bytes: batch.bytes, first: batch.first });
      }
    }
  }

  private start() {
    const worker = new Worker(WORKER);
    const w = { worker, batches: new Map<number, Batch>(), alive: true, ready: false };
    worker.on("message", (message: { id: number; data: unknown[] } | { ready: true }) => {
      if ("ready" in message) {
        w.ready = true;
        this.stats.workersReady++;
      } else {
        w.batches.delete(message.id);
        this.done.set(message.id, { data: message.data });
      }
      this.onChange();
    });
    const failed = () => {
      if (!w.alive) return;
      w.alive = false;
      this.returned.push(...w.batches.values());
      w.batches.clear();
      this.onChange();
    };
    worker.on("error", failed);
    worker.on("exit", failed);
    return w;
  }

  async close(): Promise<void> {
    const workers = this.workers ?? [];
    for (const w of workers) w.alive = false;
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}
