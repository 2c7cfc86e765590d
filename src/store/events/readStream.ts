import type { DomainEvent } from "../../domain/eventDefinition.ts";
import type { Tx } from "../db.ts";

/** The events of one stream in order, and its current version (0 when it has none). */
export async function readStream(trx: Tx, tenantId: string, streamType: string, streamId: string): Promise<{ version: number; events: DomainEvent[] }> {
  const rows = await trx
    .selectFrom("events")
    .select(["event_type", "data", "stream_version"])
    .where("tenant_id", "=", tenantId)
    .where("stream_type", "=", streamType)
    .where("stream_id", "=", streamId)
    .orderBy("stream_version")
    .execute();
  return {
    version: rows.length ? rows[rows.length - 1]!.stream_version : 0,
    events: rows.map((r) => ({ type: r.event_type, data: r.data })),
  };
}
