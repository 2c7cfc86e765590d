import type { JSONWebKeySet } from "jose";
import { ExportLineReader } from "../../../src/audit/exportLineReader.ts";
import type { VerifiableRecord } from "../../../src/audit/exportLines.ts";
import { verifyRecordBatches, type VerificationReport } from "../../../src/audit/verifyAuditRecords.ts";

// An export file verified in the page, by the verifier `keyplane audit verify` runs (src/audit/),
// against the JWKS the browser fetched: nothing is sent back to Keyplane, so a tampering server
// cannot vouch for its own log. Read in slices, so a large file neither freezes the page nor has to
// be decoded at once.

const SLICE_BYTES = 1 << 20;

export interface BrowserVerification extends VerificationReport {
  seconds: number;
}

export async function verifyExportInBrowser(file: Blob, keys: JSONWebKeySet): Promise<BrowserVerification> {
  const started = performance.now();
  const reader = new ExportLineReader(true);
  async function* batches(): AsyncGenerator<VerifiableRecord[]> {
    let carry = new Uint8Array(0);
    for (let offset = 0; offset < file.size; offset += SLICE_BYTES) {
      const slice = new Uint8Array(await file.slice(offset, offset + SLICE_BYTES).arrayBuffer());
      const bytes = carry.length ? concat(carry, slice) : slice;
      // Whole lines only: the part after the last LF waits for the next slice.
      const cut = offset + SLICE_BYTES >= file.size ? bytes.length : bytes.lastIndexOf(10) + 1;
      const out: VerifiableRecord[] = [];
      reader.read(bytes, 0, cut, out);
      carry = bytes.slice(cut);
      yield out;
      // Lets the page paint between slices.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    if (carry.length) {
      const out: VerifiableRecord[] = [];
      reader.read(carry, 0, carry.length, out);
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
