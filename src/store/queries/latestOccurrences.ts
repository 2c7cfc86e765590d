import type { Tx } from "../db.ts";

/** When the latest `limit` events of a type since a time occurred, newest first (the agent quotas' window). */
export async function latestOccurrences(trx: Tx, tenantId: string, eventType: string, since: Date, limit: number): Promise<Date[]> {
  const rows = await trx
    .selectFrom("events")
    .select("occurred_at")
    .where("tenant_id", "=", tenantId)
    .where("event_type", "=", eventType)
    .where("occurred_at", ">", since)
    .orderBy("occurred_at", "desc")
    .limit(limit)
    .execute();
  return rows.map((r) => new Date(r.occurred_at));
}

/** How many events of a type occurred since a time (what a quota's window holds now). */
export async function countOccurrences(trx: Tx, tenantId: string, eventType: string, since: Date): Promise<number> {
  const row = await trx
    .selectFrom("events")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("tenant_id", "=", tenantId)
    .where("event_type", "=", eventType)
    .where("occurred_at", ">", since)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
