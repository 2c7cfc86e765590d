import type { Tx } from "../db.ts";
import { sqlString } from "../tenantScope.ts";

/** The NOTIFY channel live feeds LISTEN on: payload "<tenant id> <last sequence>", never an event. */
export const EVENTS_CHANNEL = "keyplane_events";

// On PostgreSQL and PGlite the append function sends the hint itself. On Citus it runs on the worker
// holding the tenant, where no one listens (and a NOTIFY there would forbid the two-phase commit a
// transaction spanning nodes needs), so it leaves the hint to the transaction: the heads it appended
// are announced with its COMMIT (withTenant and withPlatform put the NOTIFY in the same message), on
// the connection it began on, the coordinator's, where Keyplane listens. NOTIFY is transactional:
// delivered on commit, dropped on rollback.
const appended = new WeakMap<Tx, Map<string, number>>();

/** Records that this transaction appended the tenant's log up to `sequence`. */
export function announceAppend(trx: Tx, tenantId: string, sequence: number): void {
  let heads = appended.get(trx);
  if (!heads) appended.set(trx, (heads = new Map()));
  heads.set(tenantId, Math.max(sequence, heads.get(tenantId) ?? 0));
}

/** The statements that send one hint per tenant this transaction appended to and did not announce yet. */
export function appendNotices(trx: Tx): string[] {
  const heads = appended.get(trx);
  appended.delete(trx);
  return [...(heads ?? [])].map(([tenantId, sequence]) => `select pg_notify('${EVENTS_CHANNEL}', ${sqlString(`${tenantId} ${sequence}`)})`);
}
