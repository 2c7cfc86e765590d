import type { Db, Tx } from "../db.ts";
import { sqlString } from "../tenantScope.ts";

/**
 * The NOTIFY channel live feeds and authentication caches LISTEN on. Payload "<tenant id> <last
 * sequence>" after an append, never an event; "<tenant id> <last sequence> credentials" when the
 * append also changed whether some token is accepted (CREDENTIAL_EVENTS).
 */
export const EVENTS_CHANNEL = "keyplane_events";

/** Events after which a token or a tenant's standing may have changed: authentication caches drop the tenant. */
export const CREDENTIAL_EVENTS: ReadonlySet<string> = new Set(["access_token.revoked", "session.revoked", "tenant.created", "tenant.tier_changed"]);

// On PostgreSQL and PGlite the append function sends the append's hint itself. On Citus it runs on the
// worker holding the tenant, where no one listens (and a NOTIFY there would forbid the two-phase commit
// a transaction spanning nodes needs), so it leaves the hint to the transaction. What a transaction
// leaves is sent with its COMMIT (withTenant and withPlatform put the NOTIFY in the same message), on
// the connection it began on, the coordinator's, where Keyplane listens. NOTIFY is transactional:
// delivered on commit, dropped on rollback.
interface Head {
  sequence: number;
  /** The append function did not notify (Citus). */
  unnotified: boolean;
  credentials: boolean;
}
const appended = new WeakMap<Tx, Map<string, Head>>();

/** Records that this transaction appended the tenant's log up to `sequence`. */
export function announceAppend(trx: Tx, tenantId: string, sequence: number, what: { notified: boolean; credentials: boolean }): void {
  let heads = appended.get(trx);
  if (!heads) appended.set(trx, (heads = new Map()));
  const head = heads.get(tenantId);
  heads.set(tenantId, {
    sequence: Math.max(sequence, head?.sequence ?? 0),
    unnotified: (head?.unnotified ?? false) || !what.notified,
    credentials: (head?.credentials ?? false) || what.credentials,
  });
}

/**
 * What the transaction leaves for its commit: the NOTIFY statements still owed, and the tenants whose
 * credentials changed (for this process's own cache, told at once after the commit).
 */
export function takeAppendNotices(trx: Tx): { statements: string[]; credentialTenants: string[] } {
  const heads = [...(appended.get(trx) ?? [])];
  appended.delete(trx);
  const owed = heads.filter(([, head]) => head.unnotified || head.credentials);
  return {
    statements: owed.map(([tenantId, head]) => `select pg_notify('${EVENTS_CHANNEL}', ${sqlString(`${tenantId} ${head.sequence}${head.credentials ? " credentials" : ""}`)})`),
    credentialTenants: heads.filter(([, head]) => head.credentials).map(([tenantId]) => tenantId),
  };
}

/** A payload of EVENTS_CHANNEL, read. */
export function parseAppendNotice(payload: string): { tenantId: string; sequence: number; credentials: boolean } | undefined {
  const [tenantId, sequence, flag] = payload.split(" ");
  const n = Number(sequence);
  if (!tenantId || !Number.isSafeInteger(n)) return undefined;
  return { tenantId, sequence: n, credentials: flag === "credentials" };
}

// This process's listeners of committed credential changes, per database handle: told right after the
// commit, before the request that made the change answers (other processes hear the NOTIFY).
const credentialListeners = new WeakMap<Db, Set<(tenantId: string) => void>>();

export function onCommittedCredentialChange(db: Db, listener: (tenantId: string) => void): () => void {
  let listeners = credentialListeners.get(db);
  if (!listeners) credentialListeners.set(db, (listeners = new Set()));
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

export function committedCredentialChanges(db: Db, tenantIds: string[]): void {
  for (const tenantId of tenantIds) for (const listener of credentialListeners.get(db) ?? []) listener(tenantId);
}
