import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// Each principal's linked identity as it is listed: the GitHub account, the tokens' expiries, the
// refresh health. Unlinking deletes the row (the log keeps the history).
export const identitiesProjection: Projection = {
  name: "linked-identities",
  tables: ["linked_identities"],
  handles: new Set(["identity.linked", "identity.refreshed", "identity.refresh_failed", "identity.expiring", "identity.unlinked"]),
  project(event) {
    const d = event.data as Data;
    const row = () => db.updateTable("linked_identities").where("tenant_id", "=", event.tenantId).where("identity_id", "=", d.identityId);
    const touched = { version: event.streamVersion, updated_at: event.occurredAt };
    switch (event.type) {
      case "identity.linked": {
        const tokens = {
          account_id: d.accountId,
          login: d.login,
          status: "linked" as const,
          access_expires_at: d.accessExpiresAt ?? null,
          refresh_expires_at: d.refreshExpiresAt ?? null,
          refresh_failures: 0,
          last_refresh_error: null,
          next_refresh_at: null,
          expiring_notice_at: null,
          linked_at: event.occurredAt,
          refreshed_at: null,
          ...touched,
        };
        return [
          db
            .insertInto("linked_identities")
            .values({
              tenant_id: event.tenantId,
              identity_id: d.identityId,
              subject: d.subject,
              subject_kind: d.subjectKind,
              provider: d.provider,
              app: d.app,
              ...tokens,
            })
            .onConflict((oc) => oc.columns(["tenant_id", "identity_id"]).doUpdateSet(tokens)),
        ];
      }
      case "identity.refreshed":
        return [
          row().set({
            status: "linked",
            access_expires_at: d.accessExpiresAt ?? null,
            refresh_expires_at: d.refreshExpiresAt ?? null,
            refresh_failures: 0,
            last_refresh_error: null,
            next_refresh_at: null,
            expiring_notice_at: null,
            refreshed_at: event.occurredAt,
            ...touched,
          }),
        ];
      case "identity.refresh_failed":
        return [
          row().set((eb) => ({
            ...(d.rejected ? { status: "needs_relink" as const } : {}),
            refresh_failures: eb("refresh_failures", "+", 1),
            last_refresh_error: d.providerCode,
            next_refresh_at: d.nextAttemptAt ?? null,
            ...touched,
          })),
        ];
      case "identity.expiring":
        return [row().set({ expiring_notice_at: event.occurredAt, ...touched })];
      case "identity.unlinked":
        return [db.deleteFrom("linked_identities").where("tenant_id", "=", event.tenantId).where("identity_id", "=", d.identityId)];
    }
    return [];
  },
};
