import { canonicalJson } from "./canonicalJson.ts";
import { sha256Hex } from "./platform.ts";

// The two hashes of the log, as the append writes them and an auditor re-computes them from an
// export: content = SHA-256(canonical JSON of HashedContent), chain = SHA-256(prev:seq:content).

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
