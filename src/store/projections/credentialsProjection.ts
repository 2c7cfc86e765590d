import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// Minted access tokens, refresh-token families and the revocation list checked on every request.
export const credentialsProjection: Projection = {
  name: "credentials",
  tables: ["access_tokens", "revoked_tokens", "sessions"],
  handles: new Set(["access_token.issued", "access_token.revoked", "session.started", "session.refreshed", "session.revoked"]),
  project(event) {
    const d = event.data as Data;
    const tenant = event.tenantId;
    switch (event.type) {
      case "access_token.issued":
        return [
          db.insertInto("access_tokens").values({
            tenant_id: tenant,
            token_id: d.tokenId,
            subject: d.subject,
            kind: d.kind,
            roles: JSON.stringify(d.roles),
            scopes: JSON.stringify(d.scopes),
            issued_at: event.occurredAt,
            expires_at: d.expiresAt,
            revoked_at: null,
          }),
        ];
      case "access_token.revoked":
        return [
          db.updateTable("access_tokens").set({ revoked_at: event.occurredAt }).where("tenant_id", "=", tenant).where("token_id", "=", d.tokenId),
          revoke(tenant, d.tokenId, d.reason, event.occurredAt, d.expiresAt),
        ];
      case "session.started":
        return [
          db.insertInto("sessions").values({
            tenant_id: tenant,
            family_id: d.familyId,
            subject: d.subject,
            kind: d.kind,
            roles: JSON.stringify(d.roles),
            scopes: JSON.stringify(d.scopes),
            current_token_id: d.refreshTokenId,
            status: "active",
            version: event.streamVersion,
            created_at: event.occurredAt,
            updated_at: event.occurredAt,
            expires_at: d.expiresAt,
          }),
        ];
      case "session.refreshed":
        return [
          db
            .updateTable("sessions")
            .set({ current_token_id: d.refreshTokenId, version: event.streamVersion, updated_at: event.occurredAt })
            .where("tenant_id", "=", tenant)
            .where("family_id", "=", d.familyId),
        ];
      case "session.revoked":
        return [
          db
            .updateTable("sessions")
            .set({ status: "revoked", version: event.streamVersion, updated_at: event.occurredAt })
            .where("tenant_id", "=", tenant)
            .where("family_id", "=", d.familyId),
          // Access tokens minted from the family carry its id (sid) and die with it.
          revoke(tenant, d.familyId, d.reason, event.occurredAt, d.expiresAt),
        ];
    }
    return [];
  },
};

function revoke(tenantId: string, tokenId: string, reason: string, at: string, expiresAt: string) {
  return db
    .insertInto("revoked_tokens")
    .values({ tenant_id: tenantId, token_id: tokenId, reason, revoked_at: at, expires_at: expiresAt })
    .onConflict((oc) => oc.columns(["tenant_id", "token_id"]).doNothing());
}
