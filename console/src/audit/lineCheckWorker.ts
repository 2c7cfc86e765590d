import { checkJsonLinesEncoded } from "../../../src/audit/checkExportBatch.ts";

// A helper of the verifier's worker: checks the lines of each batch it is sent, each line alone
// (parse, fields, audit fields, content hash), as the CLI's worker threads do
// (src/audit/node/verifyExportWorker.ts). The chain stays with the verifier.

self.onmessage = (message: MessageEvent<{ id: number; bytes: Uint8Array; first: number }>) => {
  const { id, bytes, first } = message.data;
  self.postMessage({ id, data: checkJsonLinesEncoded(bytes, first) });
};
