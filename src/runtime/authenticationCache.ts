import { sql } from "kysely";
import type { Tier } from "../domain/tenant/events.ts";
import { periodicJob } from "./periodicJob.ts";
import type { Logger } from "../logger.ts";
import { withPlatform, withTenant, type DatabaseHandle, type Db } from "../store/db.ts";
import { EVENTS_CHANNEL, onCommittedCredentialChange, parseAppendNotice } from "../store/events/announceAppends.ts";
import type { Actor } from "../auth/actor.ts";

/**
 * What the database says of a token's standing, kept per process so that authentication needs no
 * round trip in the steady state: per tenant, its status and tier and, for each token or session id
 * asked about, whether it is revoked.
 *
 * Kept fresh three ways:
 * - this process's own changes: dropped right after the commit that made them, before the request
 *   that revoked answers (announceAppends.ts);
 * - other processes' changes: dropped when their NOTIFY arrives (the append channel, flag
 *   "credentials"); everything is dropped when the LISTEN connection comes back after a loss;
 * - whatever was missed: every `revalidateMs`, one query re-reads the standing of everything kept,
 *   so nothing stays stale longer than that, even while LISTEN is down. A tenant none of whose tokens
 *   was asked about since the last re-read is dropped instead: an idle process asks nothing.
 * A read that raced with a change is not kept (the tenant's epoch moved meanwhile).
 */
export interface AuthenticationCache {
  /** The tenant's status and tier, and which of these ids are revoked: from memory, or read and kept. */
  standing(actor: Actor): Promise<Standing>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface Standing {
  /** null: no such tenant. */
  status: string | null;
  tier: Tier | null;
  revoked: boolean;
}

interface TenantEntry {
  status: string | null;
  tier: Tier | null;
  /** Token and session ids asked about: revoked or not. */
  ids: Map<string, boolean>;
  /** Asked about since the last re-read. */
  used: boolean;
}

/** Ids kept over all tenants; past it the cache starts again (a read each, then kept anew). */
const MAX_IDS = 20_000;

export function createAuthenticationCache(
  deps: { db: Db; database: Pick<DatabaseHandle, "listen">; logger: Logger },
  options: { revalidateMs: number },
): AuthenticationCache {
  const tenants = new Map<string, TenantEntry>();
  const epochs = new Map<string, number>();
  let kept = 0;
  let unlisten: (() => Promise<void>) | undefined;
  let unlistenLocal: (() => void) | undefined;
  const rereads = periodicJob(
    "authentication cache re-read",
    options.revalidateMs,
    () =>
      revalidate().catch((error: unknown) => {
        // Unsure what is current: nothing is served from memory until a read succeeds.
        dropAll();
        deps.logger.warn({ err: (error as Error).message }, "authentication cache: re-read failed; reading from the database meanwhile");
      }),
    deps.logger,
  );

  const epochOf = (tenantId: string) => epochs.get(tenantId) ?? 0;
  const drop = (tenantId: string) => {
    epochs.set(tenantId, epochOf(tenantId) + 1);
    const entry = tenants.get(tenantId);
    if (entry) kept -= entry.ids.size;
    tenants.delete(tenantId);
  };
  const dropAll = () => {
    for (const tenantId of [...tenants.keys()]) drop(tenantId);
  };

  function keep(tenantId: string, epoch: number, read: { status: string | null; tier: Tier | null; revoked: ReadonlySet<string> }, ids: string[]) {
    if (epochOf(tenantId) !== epoch) return; // changed while it was read: the next request reads again
    if (kept + ids.length > MAX_IDS) dropAll();
    let entry = tenants.get(tenantId);
    if (!entry || entry.status !== read.status || entry.tier !== read.tier) {
      if (entry) kept -= entry.ids.size;
      entry = { status: read.status, tier: read.tier, ids: new Map(), used: true };
      tenants.set(tenantId, entry);
    }
    for (const id of ids) {
      if (!entry.ids.has(id)) kept++;
      entry.ids.set(id, read.revoked.has(id));
    }
    entry.used = true;
  }

  async function revalidate() {
    for (const [tenantId, entry] of tenants) {
      if (entry.used) entry.used = false;
      else drop(tenantId);
    }
    if (tenants.size === 0) return;
    const snapshot = [...tenants].map(([tenantId, entry]) => ({ tenantId, entry, epoch: epochOf(tenantId) }));
    const ids = [...new Set(snapshot.flatMap((s) => [...s.entry.ids.keys()]))];
    const tenantIds = snapshot.map((s) => s.tenantId);
    const { rows, revoked } = await withPlatform(deps.db, async (trx) => ({
      rows: (
        await sql<{
          tenant_id: string;
          status: string;
          tier: Tier;
        }>`select tenant_id, status, tier from tenants where tenant_id = any(${tenantIds}::text[])`.execute(trx)
      ).rows,
      revoked: (
        await sql<{ tenant_id: string; token_id: string }>`
        select tenant_id, token_id from revoked_tokens where tenant_id = any(${tenantIds}::text[]) and token_id = any(${ids}::text[])`.execute(trx)
      ).rows,
    }));
    const byTenant = new Map(rows.map((r) => [r.tenant_id, r]));
    const revokedIds = new Set(revoked.map((r) => `${r.tenant_id}\u0000${r.token_id}`));
    for (const { tenantId, entry, epoch } of snapshot) {
      if (epochOf(tenantId) !== epoch || tenants.get(tenantId) !== entry) continue;
      const row = byTenant.get(tenantId);
      const changed =
        (row?.status ?? null) !== entry.status ||
        (row?.tier ?? null) !== entry.tier ||
        [...entry.ids].some(([id, wasRevoked]) => revokedIds.has(`${tenantId}\u0000${id}`) !== wasRevoked);
      if (changed) drop(tenantId);
    }
  }

  return {
    async standing(actor) {
      const ids = [...new Set([actor.tokenId, actor.sessionId ?? actor.tokenId])];
      const entry = tenants.get(actor.tenantId);
      if (entry && ids.every((id) => entry.ids.has(id))) {
        entry.used = true;
        return { status: entry.status, tier: entry.tier, revoked: ids.some((id) => entry.ids.get(id)) };
      }
      const epoch = epochOf(actor.tenantId);
      const read = await readStanding(deps.db, actor.tenantId, ids);
      keep(actor.tenantId, epoch, read, ids);
      return { status: read.status, tier: read.tier, revoked: ids.some((id) => read.revoked.has(id)) };
    },
    async start() {
      if (unlisten) return;
      unlistenLocal = onCommittedCredentialChange(deps.db, drop);
      unlisten = await deps.database.listen(EVENTS_CHANNEL, {
        onNotify(payload) {
          const notice = parseAppendNotice(payload);
          if (notice?.credentials) drop(notice.tenantId);
        },
        // Changes announced while the connection was down are lost: start again.
        onGap: dropAll,
      });
      rereads.start();
    },
    async stop() {
      await rereads.stop();
      unlistenLocal?.();
      await unlisten?.();
      unlisten = undefined;
      dropAll();
    },
  };
}

/** The tenant's status and tier, and which of `ids` are revoked: one statement, in the tenant's scope. */
async function readStanding(db: Db, tenantId: string, ids: string[]): Promise<{ status: string | null; tier: Tier | null; revoked: ReadonlySet<string> }> {
  const { rows } = await withTenant(db, tenantId, (trx) =>
    sql<{ status: string | null; tier: Tier | null; revoked: string[] | null }>`
      select (select status from tenants where tenant_id = ${tenantId}) as status,
             (select tier from tenants where tenant_id = ${tenantId}) as tier,
             (select array_agg(token_id) from revoked_tokens where tenant_id = ${tenantId} and token_id = any(${ids}::text[])) as revoked`.execute(trx),
  );
  return { status: rows[0]!.status, tier: rows[0]!.tier, revoked: new Set(rows[0]!.revoked ?? []) };
}
