import * as crypto from "node:crypto";
import { canonicalJson } from "./canonicalJson.ts";

/** The part of an event its content hash covers: everything but the sequence and the hashes. */
export interface HashedContent {
  eventId: string;
  tenantId: string;
  streamType: string;
  streamId: string;
  streamVersion: number;
  type: string;
  schemaVersion: number;
  data: unknown;
  metadata: unknown;
  occurredAt: string; // ISO 8601 with milliseconds, UTC
}

// crypto.hash (Node >= 20.12) hashes in one native call, several times faster than a Hash object;
// a verifier computes two per event. Strings are hashed as UTF-8 either way.
const oneShot = typeof crypto.hash === "function" ? crypto.hash : undefined;
const sha256Hex = oneShot ? (text: string) => oneShot("sha256", text, "hex") : (text: string) => crypto.createHash("sha256").update(text, "utf8").digest("hex");

/** Hashes exactly the HashedContent fields, whatever else the record carries (sequence, hashes, audit view). */
export function contentHash(e: HashedContent): string {
  return sha256Hex(
    canonicalJson({
      eventId: e.eventId,
      tenantId: e.tenantId,
      streamType: e.streamType,
      streamId: e.streamId,
      streamVersion: e.streamVersion,
      type: e.type,
      schemaVersion: e.schemaVersion,
      data: e.data,
      metadata: e.metadata,
      occurredAt: e.occurredAt,
    }),
  );
}

/** Each tenant's chain starts from its own genesis, so chains of two tenants never interleave. */
export function genesisHash(tenantId: string): string {
  return sha256Hex(`keyplane:genesis:${tenantId}`);
}

/** chain_n = SHA-256(chain_{n-1} ":" n ":" content_n), all hex, as UTF-8. */
export function chainHash(previousChainHash: string, sequence: number, content: string): string {
  return sha256Hex(`${previousChainHash}:${sequence}:${content}`);
}

/** Short, non-reversible reference to a secret for events and logs. */
export function fingerprint(secret: string): string {
  return "sha256:" + sha256Hex(secret).slice(0, 16);
}
