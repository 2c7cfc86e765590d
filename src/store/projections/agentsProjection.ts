import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

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
  project(event) {
    const d = event.data as Data;
    const tenant = event.tenantId;
    const agent = (set: Record<string, unknown>) =>
      db
        .updateTable("agents")
        .set({ ...set, updated_at: event.occurredAt })
        .where("tenant_id", "=", tenant)
        .where("agent_id", "=", d.agentId);
    const key = (set: Record<string, unknown>) => db.updateTable("enrollment_keys").set(set).where("tenant_id", "=", tenant).where("key_id", "=", d.keyId);
    switch (event.type) {
      case "agent.created":
        return [
          db.insertInto("agents").values({
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
          }),
        ];
      case "agent.updated":
        return [agent({ name: d.agentName, type: d.type, config: JSON.stringify(d.config), tags: JSON.stringify(d.tags), version: d.version })];
      case "agent.published":
        return [agent({ status: "published", version: d.version })];
      case "agent.deleted":
        return [agent({ status: "deleted", version: d.version })];
      case "agent.enrolled":
        return [agent({ tags: JSON.stringify(d.tags), host: JSON.stringify(d.host), enrolled_at: event.occurredAt, version: d.version })];
      case "agent.online":
        return [agent({ connection: "online", offline_since: null })];
      case "agent.offline":
        return [agent({ connection: "offline", offline_since: event.occurredAt })];
      case "enrollment_key.created":
        return [
          db.insertInto("enrollment_keys").values({
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
          }),
          db.insertInto("enrollment_key_prefixes").values({ prefix: d.prefix, tenant_id: tenant, key_id: d.keyId }),
        ];
      case "enrollment_key.used":
        return [key({ uses: d.use, last_used_at: event.occurredAt })];
      case "enrollment_key.revoked":
        return [key({ revoked_at: event.occurredAt })];
      case "enrollment_key.pruned":
        return [
          db.deleteFrom("enrollment_keys").where("tenant_id", "=", tenant).where("key_id", "=", d.keyId),
          db.deleteFrom("enrollment_key_prefixes").where("tenant_id", "=", tenant).where("key_id", "=", d.keyId),
        ];
    }
    return [];
  },
};
