import { chainHash, contentHash, genesisHash } from "./hashing.ts";
import type { StoredEvent } from "./types.ts";

export type ChainProblem = { sequence: number; problem: "content-hash" | "chain-hash" | "sequence-gap" | "tenant" };

/**
 * Re-computes content and chain hashes of consecutive events of one tenant, from genesis or from the
 * chain hash before the first one. Answers the first event that does not match, or null.
 */
export function verifyChain(events: readonly StoredEvent[], start?: { sequence: number; chainHash: string }): ChainProblem | null {
  if (events.length === 0) return null;
  const tenantId = events[0]!.tenantId;
  let previous = start?.chainHash ?? genesisHash(tenantId);
  let expectedSeq = (start?.sequence ?? 0) + 1;
  for (const e of events) {
    if (e.tenantId !== tenantId) return { sequence: e.sequence, problem: "tenant" };
    if (e.sequence !== expectedSeq) return { sequence: expectedSeq, problem: "sequence-gap" };
    const content = contentHash({
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
    });
    if (content !== e.contentHash) return { sequence: e.sequence, problem: "content-hash" };
    previous = chainHash(previous, e.sequence, content);
    if (previous !== e.chainHash) return { sequence: e.sequence, problem: "chain-hash" };
    expectedSeq++;
  }
  return null;
}
