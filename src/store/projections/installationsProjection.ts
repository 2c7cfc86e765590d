import type { Updateable } from "kysely";
import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import type { InstallationsTable } from "../schema.ts";
import type { Projection } from "./projection.ts";

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
  async apply(trx, event) {
    const d = event.data as Data;
    switch (event.type) {
      case "installation.created":
        await trx
          .insertInto("installations")
          .values({
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
          })
          .execute();
        return;
      case "installation.reauthorized":
        return update(trx, event, { ...accountColumns(d), ...credentialColumns(d.credentials), needs_reauth: false, refresh_failures: 0, last_refresh_error: null, next_refresh_at: null });
      case "installation.suspended":
        return update(trx, event, d.by === "tenant" ? { suspended_by_tenant: true } : { suspended_by_provider: true });
      case "installation.resumed":
        return update(trx, event, d.by === "tenant" ? { suspended_by_tenant: false } : { suspended_by_provider: false });
      case "installation.revoked":
        return update(trx, event, { revoked_at: event.occurredAt, credential_fingerprint: null, credentials_expires_at: null, next_refresh_at: null });
      case "installation.permissions_updated":
        return update(trx, event, { permissions: JSON.stringify(d.permissions) });
      case "installation.repositories_changed": {
        const row = await trx
          .selectFrom("installations")
          .select(["repositories", "repository_selection"])
          .where("tenant_id", "=", event.tenantId)
          .where("installation_id", "=", d.installationId)
          .executeTakeFirstOrThrow();
        const repositories = new Set<string>(row.repositories ?? []);
        for (const name of d.added) repositories.add(name);
        for (const name of d.removed) repositories.delete(name);
        return update(trx, event, { repositories: JSON.stringify([...repositories].sort()), repository_selection: d.repositorySelection ?? row.repository_selection });
      }
      case "installation.credentials_refreshed":
        return update(trx, event, { ...credentialColumns(d), last_refreshed_at: event.occurredAt, refresh_failures: 0, last_refresh_error: null, next_refresh_at: null });
      case "installation.refresh_failed":
        return update(trx, event, { refresh_failures: d.attempt, last_refresh_error: d.providerCode, next_refresh_at: d.nextAttemptAt });
      case "installation.needs_reauth":
        return update(trx, event, { needs_reauth: true, last_refresh_error: d.providerCode, next_refresh_at: null });
      case "credentials.read":
        return update(trx, event, { last_credentials_read_at: event.occurredAt });
    }
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

async function update(trx: Tx, event: StoredEvent, set: Updateable<InstallationsTable>) {
  await trx
    .updateTable("installations")
    .set({ ...set, version: event.streamVersion, updated_at: event.occurredAt })
    .where("tenant_id", "=", event.tenantId)
    .where("installation_id", "=", (event.data as Data).installationId)
    .execute();
}
