import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// Token policies and the GitHub tokens handed out (fingerprints only).
export const githubTokensProjection: Projection = {
  name: "github-tokens",
  tables: ["token_policies", "github_tokens"],
  handles: new Set(["token_policy.set", "token_policy.deleted", "token.issued", "token.revoked"]),
  project(event) {
    const d = event.data as Data;
    const tenant = event.tenantId;
    switch (event.type) {
      case "token_policy.set": {
        const row = {
          app: d.app,
          roles: JSON.stringify(d.roles),
          subjects: JSON.stringify(d.subjects),
          agent_tags: JSON.stringify(d.agentTags),
          repositories: JSON.stringify(d.repositories),
          permissions: JSON.stringify(d.permissions),
          version: event.streamVersion,
          updated_by: event.metadata.actor.subject,
          updated_at: event.occurredAt,
        };
        return [
          db
            .insertInto("token_policies")
            .values({ tenant_id: tenant, name: d.name, ...row })
            .onConflict((oc) => oc.columns(["tenant_id", "name"]).doUpdateSet(row)),
        ];
      }
      case "token_policy.deleted":
        return [db.deleteFrom("token_policies").where("tenant_id", "=", tenant).where("name", "=", d.name)];
      case "token.issued":
        return [
          db.insertInto("github_tokens").values({
            tenant_id: tenant,
            token_id: d.tokenId,
            app: d.app,
            installation_id: d.installationId,
            github_installation_id: d.githubInstallationId,
            requester: d.requester,
            policy: d.policy,
            repositories: d.repositories ? JSON.stringify(d.repositories) : null,
            permissions: JSON.stringify(d.permissions),
            fingerprint: d.fingerprint,
            cached: d.cached,
            issued_at: event.occurredAt,
            expires_at: d.expiresAt,
            revoked_at: null,
            revoke_reason: null,
          }),
        ];
      case "token.revoked":
        return [
          db
            .updateTable("github_tokens")
            .set({ revoked_at: event.occurredAt, revoke_reason: d.reason })
            .where("tenant_id", "=", tenant)
            .where("token_id", "=", d.tokenId),
        ];
    }
    return [];
  },
};
