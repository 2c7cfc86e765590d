import type { JSONWebKeySet } from "jose";
import { ExportLineReader } from "../../../src/audit/exportLineReader.ts";
import type { VerifiableRecord } from "../../../src/audit/exportLines.ts";
import { verifyRecordBatches, type VerificationReport } from "../../../src/audit/verifyAuditRecords.ts";

// An export file verified in the browser, by the verifier `keyplane audit verify` runs (src/audit/),
// against the JWKS the browser fetched: nothing is sent back to Keyplane, so a tampering server
// cannot vouch for its own log. It runs in a worker (verifyWorker.ts), reading the file in slices
// (the next one read while this one is checked), so a large file neither freezes the page nor has
// to be decoded at once.

const SLICE_BYTES = 4 << 20;

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
  const reader = new ExportLineReader(true);
  const read = (offset: number) => (offset < file.size ? file.slice(offset, offset + SLICE_BYTES).arrayBuffer() : undefined);
  async function* batches(): AsyncGenerator<VerifiableRecord[]> {
    let carry = new Uint8Array(0);
    let next = read(0);
    for (let offset = 0; next; offset += SLICE_BYTES) {
      const slice = new Uint8Array(await next);
      next = read(offset + SLICE_BYTES);
      const bytes = carry.length ? concat(carry, slice) : slice;
      // Whole lines only: the part after the last LF waits for the next slice.
      const cut = next ? bytes.lastIndexOf(10) + 1 : bytes.length;
      const out: VerifiableRecord[] = [];
      reader.read(bytes, 0, cut, out);
      carry = bytes.slice(cut);
      yield out;
    }
  }
  const report = await verifyRecordBatches(batches(), { source: "export", keys });
  return { ...report, seconds: (performance.now() - started) / 1000 };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
