import type { Selectable } from "kysely";
import type { EnrollmentKeyState } from "../../domain/enrollmentKey/evolve.ts";
import type { Tx } from "../db.ts";
import type { EnrollmentKeysTable } from "../schema.ts";

/** A key machines enroll with, as projected: its prefix, hash and state, never the key. */
export type EnrollmentKeyRow = Selectable<EnrollmentKeysTable>;

/** The tenant's keys still listed (not pruned), newest first; `limit` caps an unpaged list. */
export function listEnrollmentKeys(trx: Tx, tenantId: string, options: { limit?: number } = {}): Promise<EnrollmentKeyRow[]> {
  const q = trx.selectFrom("enrollment_keys").selectAll().where("tenant_id", "=", tenantId).orderBy("created_at", "desc").orderBy("key_id", "desc");
  return (options.limit === undefined ? q : q.limit(options.limit)).execute();
}

/**
 * Platform-wide (withPlatform): the key with this prefix, in whichever tenant. The prefix is unique
 * across tenants in its lookup table, which names the tenant's key row (two primary-key lookups).
 */
export async function findEnrollmentKeyByPrefix(trx: Tx, prefix: string): Promise<(EnrollmentKeyRow & { tenant_status: string | null }) | undefined> {
  const known = await trx.selectFrom("enrollment_key_prefixes").select(["tenant_id", "key_id"]).where("prefix", "=", prefix).executeTakeFirst();
  return (
    known &&
    trx
      .selectFrom("enrollment_keys")
      .selectAll("enrollment_keys")
      // The key's tenant's status in the same statement (a suspended tenant's keys enroll nothing).
      .select((eb) => eb.selectFrom("tenants").select("status").whereRef("tenants.tenant_id", "=", "enrollment_keys.tenant_id").as("tenant_status"))
      .where("enrollment_keys.tenant_id", "=", known.tenant_id)
      .where("key_id", "=", known.key_id)
      .executeTakeFirst()
  );
}

/** A listed key's row as its decider's state: what keyRefusal judges before a use or a prune. */
export function enrollmentKeyStateOf(row: EnrollmentKeyRow): EnrollmentKeyState {
  return {
    exists: true,
    keyId: row.key_id,
    reusable: row.reusable,
    maxUses: row.max_uses,
    uses: row.uses,
    expiresAt: new Date(row.expires_at).toISOString(),
    revoked: row.revoked_at !== null,
    agentId: row.agent_id,
  };
}
