import { parentPort } from "node:worker_threads";
import { checkJsonLinesEncoded } from "../checkExportBatch.ts";

// A worker thread of verifyExportFile.ts: checks the lines of the batches it is sent, each line
// alone (parse, fields, audit fields, content hash), and sends back what it found. The chain is
// the main thread's. Loaded as TypeScript by Node.js itself from a checkout (type stripping:
// this file and what it imports use no syntax that needs transforming), as JavaScript from dist/.

interface Batch {
  id: number;
  bytes: Uint8Array;
  first: number;
}

parentPort!.on("message", ({ id, bytes, first }: Batch) => {
  parentPort!.postMessage({ id, data: checkJsonLinesEncoded(bytes, first) });
});
// Loaded: batches can come (until then the main thread checks them itself).
parentPort!.postMessage({ ready: true });
