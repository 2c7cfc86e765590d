import type { JSONWebKeySet } from "jose";
import { countLines, decodeCheckedLines } from "../../../src/audit/checkExportBatch.ts";
import { ExportLineReader } from "../../../src/audit/exportLineReader.ts";
import type { VerifiableRecord } from "../../../src/audit/exportLines.ts";
import { verifyRecordBatches, type VerificationReport } from "../../../src/audit/verifyAuditRecords.ts";

// An export file verified in the browser, by the verifier `keyplane audit verify` runs (src/audit/),
// against the JWKS the browser fetched: nothing is sent back to Keyplane, so a tampering server
// cannot vouch for its own log. It runs in a worker (verifyWorker.ts), off the page's main thread.
// As the CLI does with threads, the lines of an NDJSON file are checked in batches by helper workers
// (lineCheckWorker.ts), one per core, and the chain (a small share of the work) is followed here
// through their results in order; the first lines (the header) and a CSV file are read here.

const BATCH_BYTES = 1 << 20;

export interface BrowserVerification extends VerificationReport {
  seconds: number;
}

/** In a worker: the page's main thread only waits for the answer. */
export function verifyExportInBrowser(file: Blob, keys: JSONWebKeySet): Promise<BrowserVerification> {
  const worker = new Worker(new URL("./verifyWorker.ts", import.meta.url), { type: "module" });
  return new Promise<BrowserVerification>((resolve, reject) => {
    worker.onmessage = (message: MessageEvent<{ ok: true; report: BrowserVerification } | { ok: false; message: string }>) =>
      message.data.ok ? resolve(message.data.report) : reject(new Error(message.data.message));
    worker.onerror = (event) => reject(new Error(event.message || "the verifier's worker failed"));
    worker.postMessage({ file, keys });
  }).finally(() => worker.terminate());
}

/** The verification itself (verifyWorker.ts runs it). */
export async function verifyExport(file: Blob, keys: JSONWebKeySet): Promise<BrowserVerification> {
  const started = performance.now();
  const helpers = Array.from({ length: Math.max(2, Math.min(4, navigator.hardwareConcurrency || 2)) }, () => new LineChecker());
  try {
    const report = await verifyRecordBatches(batches(file, helpers), { source: "export", keys });
    return { ...report, seconds: (performance.now() - started) / 1000 };
  } finally {
    for (const helper of helpers) helper.close();
  }
}

async function* batches(file: Blob, helpers: LineChecker[]): AsyncGenerator<VerifiableRecord[]> {
  const reader = new ExportLineReader(true);
  const pending: Promise<VerifiableRecord[]>[] = [];
  let first = 0;
  let turn = 0;
  for await (const bytes of wholeLines(file)) {
    if (reader.format === "ndjson" && !reader.stopped) {
      // Each line stands alone: checked by a helper, handed on in order.
      pending.push(helpers[turn++ % helpers.length]!.check(bytes, first));
      first += countLines(bytes);
      if (pending.length >= helpers.length * 2) yield await pending.shift()!;
      continue;
    }
    // Until the first record tells the format, and all of a CSV file (a record may run over lines).
    const out: VerifiableRecord[] = [];
    reader.read(bytes, 0, bytes.byteLength, out);
    first = reader.n + 1;
    if (out.length) yield out;
  }
  while (pending.length) yield await pending.shift()!;
  const out: VerifiableRecord[] = [];
  reader.end(out);
  if (out.length) yield out;
}

/** The file in batches of whole lines (about BATCH_BYTES each), the next one read while this one is used. */
async function* wholeLines(file: Blob): AsyncGenerator<Uint8Array> {
  const read = (offset: number) => (offset < file.size ? file.slice(offset, offset + BATCH_BYTES).arrayBuffer() : undefined);
  let carry = new Uint8Array(0);
  let next = read(0);
  for (let offset = 0; next; offset += BATCH_BYTES) {
    const slice = new Uint8Array(await next);
    next = read(offset + BATCH_BYTES);
    const bytes = carry.length ? concat(carry, slice) : slice;
    // The part after the last LF waits for the next slice.
    const cut = next ? bytes.lastIndexOf(10) + 1 : bytes.length;
    carry = bytes.slice(cut);
    if (cut > 0) yield bytes.subarray(0, cut);
  }
}

/** One helper worker and the batches it has been sent. */
class LineChecker {
  private readonly worker = new Worker(new URL("./lineCheckWorker.ts", import.meta.url), { type: "module" });
  private readonly waiting = new Map<number, { resolve: (records: VerifiableRecord[]) => void; reject: (error: Error) => void }>();
  private id = 0;

  constructor() {
    this.worker.onmessage = (message: MessageEvent<{ id: number; data: unknown[] }>) => {
      const waiter = this.waiting.get(message.data.id)!;
      this.waiting.delete(message.data.id);
      waiter.resolve(decodeCheckedLines(message.data.data));
    };
    this.worker.onerror = (event) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(event.message || "a line checker failed"));
      this.waiting.clear();
    };
  }

  check(bytes: Uint8Array, first: number): Promise<VerifiableRecord[]> {
    const id = ++this.id;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const copy = bytes.slice();
      this.worker.postMessage({ id, bytes: copy, first }, [copy.buffer]);
    });
  }

  close() {
    this.worker.terminate();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
