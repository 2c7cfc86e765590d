import type { Logger } from "../logger.ts";
import { withPlatform, type Db } from "../store/db.ts";
import type { Actor } from "./actor.ts";

export type CredentialEnd = "Token revoked" | "Token expired" | "Tenant suspended";

/**
 * Long-lived operations (WebSockets, SSE subscriptions) follow the token they started with: a
 * revocation of the token or its session, or a tenant that is no longer active, ends them within one
 * check, and expiry ends them on time. One query per check covers everything this process watches;
 * no query runs while nothing is watched.
 */
export interface TokenWatch {
  /** Calls `end` once when the actor's credential stops being good; the function returned stops watching. */
  watch(actor: Actor, end: (reason: CredentialEnd) => void): () => void;
}

interface Watched {
  actor: Actor;
  end: (reason: CredentialEnd) => void;
  expiry?: NodeJS.Timeout;
}

/** `now` (deps.now) says how long a watched token has left; the end itself is a timer of real time. */
export function createTokenWatch(db: Db, options: { intervalMs: number; logger: Logger; now?: () => Date }): TokenWatch {
  const now = options.now ?? (() => new Date());
  const watched = new Set<Watched>();
  let timer: NodeJS.Timeout | undefined;
  let checking = false;

  /** Stops watching the entry; false when it was no longer watched. */
  const forget = (entry: Watched): boolean => {
    if (!watched.delete(entry)) return false;
    clearTimeout(entry.expiry);
    if (watched.size === 0) stop();
    return true;
  };
  const finish = (entry: Watched, reason: CredentialEnd) => {
    if (forget(entry)) entry.end(reason);
  };

  async function check() {
    const entries = [...watched];
    if (entries.length === 0) return;
    const refused = await refusedActors(
      db,
      entries.map((e) => e.actor),
    );
    for (const entry of entries) {
      const reason = refused.get(entry.actor);
      if (reason) finish(entry, reason);
    }
  }

  function start() {
    timer ??= setInterval(() => {
      if (checking) return;
      checking = true;
      check()
        .catch((error: unknown) => options.logger.warn({ err: error }, "token check failed; trying again"))
        .finally(() => (checking = false));
    }, options.intervalMs);
    timer.unref();
  }
  function stop() {
    clearInterval(timer);
    timer = undefined;
  }

  return {
    watch(actor, end) {
      const entry: Watched = { actor, end };
      watched.add(entry);
      const left = actor.expiresAt.getTime() - now().getTime();
      // setTimeout holds 32-bit delays; a platform actor "never" expires.
      if (left < 2 ** 31 - 1) {
        entry.expiry = setTimeout(() => finish(entry, "Token expired"), Math.max(left, 0));
        entry.expiry.unref();
      }
      start();
      return () => void forget(entry);
    },
  };
}

/** Of these actors, those whose token or session was revoked since, or whose tenant is no longer active, and why. */
async function refusedActors(db: Db, actors: Actor[]): Promise<Map<Actor, CredentialEnd>> {
  const tokenIds = [...new Set(actors.flatMap((a) => (a.sessionId ? [a.tokenId, a.sessionId] : [a.tokenId])))];
  const tenantIds = [...new Set(actors.map((a) => a.tenantId))];
  const { revoked, inactive } = await withPlatform(db, async (trx) => ({
    revoked: await trx.selectFrom("revoked_tokens").select(["tenant_id", "token_id"]).where("token_id", "in", tokenIds).execute(),
    inactive: await trx.selectFrom("tenants").select(["tenant_id", "status"]).where("tenant_id", "in", tenantIds).where("status", "!=", "active").execute(),
  }));
  const revokedIds = new Set(revoked.map((r) => `${r.tenant_id}\u0000${r.token_id}`));
  const inactiveTenants = new Map(inactive.map((t) => [t.tenant_id, t.status]));
  const refused = new Map<Actor, CredentialEnd>();
  for (const a of actors) {
    if (inactiveTenants.get(a.tenantId) === "suspended") refused.set(a, "Tenant suspended");
    else if (
      inactiveTenants.has(a.tenantId) ||
      revokedIds.has(`${a.tenantId}\u0000${a.tokenId}`) ||
      (a.sessionId !== undefined && revokedIds.has(`${a.tenantId}\u0000${a.sessionId}`))
    ) {
      refused.set(a, "Token revoked");
    }
  }
  return refused;
}
