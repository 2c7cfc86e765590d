import { sql, type Selectable } from "kysely";
import type { Tx } from "../db.ts";
import type { LinkedIdentitiesTable } from "../schema.ts";

export type LinkedIdentityRow = Selectable<LinkedIdentitiesTable>;

export async function findIdentity(trx: Tx, tenantId: string, identityId: string): Promise<LinkedIdentityRow | undefined> {
  return trx.selectFrom("linked_identities").selectAll().where("tenant_id", "=", tenantId).where("identity_id", "=", identityId).executeTakeFirst();
}

/** The principal's identity with this app, if linked. */
export async function findPrincipalIdentity(trx: Tx, tenantId: string, subject: string, app: string): Promise<LinkedIdentityRow | undefined> {
  return trx
    .selectFrom("linked_identities")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("subject", "=", subject)
    .where("provider", "=", "github")
    .where("app", "=", app)
    .executeTakeFirst();
}

/** A tenant's identities (or one principal's), oldest link first. */
export async function listIdentities(trx: Tx, tenantId: string, subject?: string): Promise<LinkedIdentityRow[]> {
  let query = trx.selectFrom("linked_identities").selectAll().where("tenant_id", "=", tenantId);
  if (subject !== undefined) query = query.where("subject", "=", subject);
  return query.orderBy("linked_at").orderBy("identity_id").limit(500).execute();
}

/** Linked identities whose refresh token ends before `before` and whose principal was not yet told (the sweep, across tenants). */
export async function identitiesExpiringBefore(trx: Tx, before: Date, limit: number): Promise<Array<Pick<LinkedIdentityRow, "tenant_id" | "identity_id">>> {
  return trx
    .selectFrom("linked_identities")
    .select(["tenant_id", "identity_id"])
    .where("status", "=", "linked")
    .where("refresh_expires_at", "<", before)
    .where("expiring_notice_at", "is", null)
    .orderBy("refresh_expires_at")
    .limit(limit)
    .execute();
}

/** Identities of agents that were deleted (by deleteAgent or the ephemeral sweep), across tenants. */
export async function identitiesOfDeletedAgents(trx: Tx, limit: number): Promise<Array<Pick<LinkedIdentityRow, "tenant_id" | "identity_id">>> {
  return trx
    .selectFrom("linked_identities as i")
    .innerJoin("agents as a", (join) => join.onRef("a.tenant_id", "=", "i.tenant_id").on(sql`'agent:' || a.agent_id`, "=", sql.ref("i.subject")))
    .select(["i.tenant_id", "i.identity_id"])
    .where("i.subject_kind", "=", "agent")
    .where("a.status", "=", "deleted")
    .limit(limit)
    .execute();
}
