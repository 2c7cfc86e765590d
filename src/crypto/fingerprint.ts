import * as crypto from "node:crypto";

/** Short, non-reversible reference to a secret for events and logs: secrets never enter an event. */
export function fingerprint(secret: string): string {
  return "sha256:" + crypto.hash("sha256", secret, "hex").slice(0, 16);
}
