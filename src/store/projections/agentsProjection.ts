import type { Projection } from "./projection.ts";

type Data = Record<string, any>;

// The agents registry and enrollment keys (prefix and hash only; the prefix, unique across tenants,
// also in its lookup table, where enrollment finds the key without knowing the tenant).
export const agentsProjection: Projection = {
  name: "agents",
  tables: ["agents", "enrollment_keys", "enrollment_key_prefixes"],
  handles: new Set([
    "agent.created",
    "agent.updated",
    "agent.published",
    "agent.deleted",
    "agent.enrolled",
    "agent.online",
    "agent.offline",
    "enrollment_key.created",
    "enrollment_key.used",
    "enrollment_key.revoked",
    "enrollment_key.pruned",
  ]),
  async apply(trx, event) {
    const d = event.data as Data;
    const tenant = event.tenantId;
    const agent = (set: Record<string, unknown>) =>
      trx
        .updateTable("agents")
        .set({ ...set, updated_at: event.occurredAt })
        .where("tenant_id", "=", tenant)
        .where("agent_id", "=", d.agentId)
        .execute();
    const key = (set: Record<string, unknown>) => trx.updateTable("enrollment_keys").set(set).where("tenant_id", "=", tenant).where("key_id", "=", d.keyId).execute();
    switch (event.type) {
      case "agent.created":
        await trx
          .insertInto("agents")
          .values({
            tenant_id: tenant,
            agent_id: d.agentId,
            name: d.agentName,
            type: d.type,
            version: d.version,
            config: JSON.stringify(d.config),
            tags: JSON.stringify(d.tags),
            status: "draft",
            connection: "pending",
            ephemeral: d.ephemeral,
            host: null,
            enrolled_at: null,
            offline_since: null,
            created_by: event.metadata.actor.subject,
            created_at: event.occurredAt,
            updated_at: event.occurredAt,
          })
          .execute();
        return;
      case "agent.updated":
        await agent({ name: d.agentName, type: d.type, config: JSON.stringify(d.config), tags: JSON.stringify(d.tags), version: d.version });
        return;
      case "agent.published":
        await agent({ status: "published", version: d.version });
        return;
      case "agent.deleted":
        await agent({ status: "deleted", version: d.version });
        return;
      case "agent.enrolled":
        await agent({ tags: JSON.stringify(d.tags), host: JSON.stringify(d.host), enrolled_at: event.occurredAt, version: d.version });
        return;
      case "agent.online":
        await agent({ connection: "online", offline_since: null });
        return;
      case "agent.offline":
        await agent({ connection: "offline", offline_since: event.occurredAt });
        return;
      case "enrollment_key.created":
        await trx
          .insertInto("enrollment_keys")
          .values({
            tenant_id: tenant,
            key_id: d.keyId,
            prefix: d.prefix,
            key_hash: d.keyHash,
            description: d.description,
            reusable: d.reusable,
            ephemeral: d.ephemeral,
            max_uses: d.maxUses,
            tags: JSON.stringify(d.tags),
            agent_id: d.agentId,
            expires_at: d.expiresAt,
            revoked_at: null,
            last_used_at: null,
            created_by: event.metadata.actor.subject,
            created_at: event.occurredAt,
          })
          .execute();
        await trx.insertInto("enrollment_key_prefixes").values({ prefix: d.prefix, tenant_id: tenant, key_id: d.keyId }).execute();
        return;
      case "enrollment_key.used":
        await key({ uses: d.use, last_used_at: event.occurredAt });
        return;
      case "enrollment_key.revoked":
        await key({ revoked_at: event.occurredAt });
        return;
      case "enrollment_key.pruned":
        await trx.deleteFrom("enrollment_keys").where("tenant_id", "=", tenant).where("key_id", "=", d.keyId).execute();
        await trx.deleteFrom("enrollment_key_prefixes").where("tenant_id", "=", tenant).where("key_id", "=", d.keyId).execute();
        return;
    }
  },
};
