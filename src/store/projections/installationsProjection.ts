import { sql, type UpdateObject } from "kysely";
import type { Database } from "../schema.ts";
import type { ProjectedEvent, Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// The installations read model: public facts, status flags and refresh health. No secret here.
export const installationsProjection: Projection = {
  name: "installations",
  tables: ["installations"],
  handles: new Set([
    "installation.created",
    "installation.reauthorized",
    "installation.suspended",
    "installation.resumed",
    "installation.revoked",
    "installation.permissions_updated",
    "installation.repositories_changed",
    "installation.credentials_refreshed",
    "installation.refresh_failed",
    "installation.needs_reauth",
    "credentials.read",
  ]),
  project(event) {
    const d = event.data as Data;
    switch (event.type) {
      case "installation.created":
        return [
          db.insertInto("installations").values({
            tenant_id: event.tenantId,
            installation_id: d.installationId,
            platform: d.platform,
            app: d.app ?? null,
            external_id: d.externalId,
            ...accountColumns(d),
            repositories: d.repositories ? JSON.stringify([...d.repositories].sort()) : null,
            ...credentialColumns(d.credentials),
            last_refreshed_at: null,
            version: event.streamVersion,
            created_by: event.metadata.actor.subject,
            created_at: event.occurredAt,
            updated_at: event.occurredAt,
          }),
        ];
      case "installation.reauthorized":
        return update(event, {
          ...accountColumns(d),
          ...credentialColumns(d.credentials),
          needs_reauth: false,
          refresh_failures: 0,
          last_refresh_error: null,
          next_refresh_at: null,
        });
      case "installation.suspended":
        return update(event, d.by === "tenant" ? { suspended_by_tenant: true } : { suspended_by_provider: true });
      case "installation.resumed":
        return update(event, d.by === "tenant" ? { suspended_by_tenant: false } : { suspended_by_provider: false });
      case "installation.revoked":
        return update(event, { revoked_at: event.occurredAt, credential_fingerprint: null, credentials_expires_at: null, next_refresh_at: null });
      case "installation.permissions_updated":
        return update(event, { permissions: JSON.stringify(d.permissions) });
      case "installation.repositories_changed":
        // The set (what it held, plus added, minus removed) in the row's own UPDATE: a projection writes without reading first.
        return update(event, {
          repositories: sql`(select coalesce(jsonb_agg(name order by name collate "C"), '[]'::jsonb) from (
              select jsonb_array_elements_text(coalesce(repositories, '[]'::jsonb)) as name
              union select jsonb_array_elements_text(${JSON.stringify(d.added)}::jsonb)
              except select jsonb_array_elements_text(${JSON.stringify(d.removed)}::jsonb)) as names)`,
          repository_selection: sql`coalesce(${d.repositorySelection ?? null}::text, repository_selection)`,
        });
      case "installation.credentials_refreshed":
        return update(event, {
          ...credentialColumns(d),
          last_refreshed_at: event.occurredAt,
          refresh_failures: 0,
          last_refresh_error: null,
          next_refresh_at: null,
        });
      case "installation.refresh_failed":
        return update(event, { refresh_failures: d.attempt, last_refresh_error: d.providerCode, next_refresh_at: d.nextAttemptAt });
      case "installation.needs_reauth":
        return update(event, { needs_reauth: true, last_refresh_error: d.providerCode, next_refresh_at: null });
      case "credentials.read":
        return update(event, { last_credentials_read_at: event.occurredAt });
    }
    return [];
  },
};

function accountColumns(d: Data) {
  return {
    account_id: d.account.id,
    account_login: d.account.login,
    account_type: d.account.type,
    account_url: d.account.url ?? null,
    permissions: JSON.stringify(d.permissions),
    scopes: JSON.stringify(d.scopes),
    repository_selection: d.repositorySelection ?? null,
    details: d.details ? JSON.stringify(d.details) : null,
  };
}

function credentialColumns(credentials: Data | undefined) {
  return { credential_fingerprint: credentials?.fingerprint ?? null, credentials_expires_at: credentials?.expiresAt ?? null };
}

function update(event: ProjectedEvent, set: UpdateObject<Database, "installations">) {
  return [
    db
      .updateTable("installations")
      .set({ ...set, version: event.streamVersion, updated_at: event.occurredAt })
      .where("tenant_id", "=", event.tenantId)
      .where("installation_id", "=", (event.data as Data).installationId),
  ];
}
