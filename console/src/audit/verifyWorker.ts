import type { JSONWebKeySet } from "jose";
import { verifyExport } from "./verifyInBrowser.ts";

// The verification runs here, off the page's main thread: the page stays responsive however large
// the file, and the verifier needs no pauses to let it paint.

self.onmessage = async (message: MessageEvent<{ file: Blob; keys: JSONWebKeySet }>) => {
  try {
    self.postMessage({ ok: true, report: await verifyExport(message.data.file, message.data.keys) });
  } catch (error) {
    self.postMessage({ ok: false, message: (error as Error).message });
  }
};
