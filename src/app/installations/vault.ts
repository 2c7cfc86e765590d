import { fingerprint } from "../../crypto/fingerprint.ts";
import type { Keyring } from "../../crypto/keyring.ts";
import type { CredentialFacts } from "../../domain/installation/decide.ts";
import type { ProviderCredentials } from "../../providers/provider.ts";
import type { Tx } from "../../store/db.ts";

// The credential vault: one row per installation holding AES-GCM envelopes. Each value's additional
// authenticated data names its tenant, installation and field, so a ciphertext copied to another row
// (or from the refresh-token column to the access-token column) refuses to decrypt.

const aad = (tenantId: string, installationId: string, field: "access_token" | "refresh_token") => `installation:${tenantId}:${installationId}:${field}`;

export interface VaultEntry {
  credentials: ProviderCredentials;
  keyIds: string[];
}

/** Encrypts and stores credentials beside the event that records their fingerprint; returns those facts. */
export async function storeCredentials(
  trx: Tx,
  keyring: Keyring,
  tenantId: string,
  installationId: string,
  credentials: ProviderCredentials,
  now: Date,
): Promise<CredentialFacts> {
  const row = {
    key_id: keyring.currentKeyId,
    access_token: keyring.encrypt(credentials.accessToken, aad(tenantId, installationId, "access_token")),
    refresh_token: credentials.refreshToken ? keyring.encrypt(credentials.refreshToken, aad(tenantId, installationId, "refresh_token")) : null,
    expires_at: credentials.expiresAt ?? null,
    updated_at: now,
  };
  await trx
    .insertInto("installation_secrets")
    .values({ tenant_id: tenantId, installation_id: installationId, ...row })
    .onConflict((oc) => oc.columns(["tenant_id", "installation_id"]).doUpdateSet(row))
    .execute();
  return credentialFacts(credentials, keyring.currentKeyId);
}

export function credentialFacts(credentials: ProviderCredentials, keyId: string): CredentialFacts {
  return { fingerprint: fingerprint(credentials.accessToken), ...(credentials.expiresAt ? { expiresAt: credentials.expiresAt.toISOString() } : {}), keyId };
}

/** Decrypts an installation's credentials; `forUpdate` holds the row for the rest of the transaction. */
export async function readCredentials(trx: Tx, keyring: Keyring, tenantId: string, installationId: string, forUpdate = false): Promise<VaultEntry | null> {
  let query = trx.selectFrom("installation_secrets").selectAll().where("tenant_id", "=", tenantId).where("installation_id", "=", installationId);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (!row) return null;
  const keyIds = [keyring.keyIdOf(row.access_token), ...(row.refresh_token ? [keyring.keyIdOf(row.refresh_token)] : [])];
  return {
    keyIds: [...new Set(keyIds)],
    credentials: {
      accessToken: keyring.decrypt(row.access_token, aad(tenantId, installationId, "access_token")),
      ...(row.refresh_token ? { refreshToken: keyring.decrypt(row.refresh_token, aad(tenantId, installationId, "refresh_token")) } : {}),
      ...(row.expires_at ? { expiresAt: new Date(row.expires_at) } : {}),
      scopes: [],
    },
  };
}

export async function forgetCredentials(trx: Tx, tenantId: string, installationId: string): Promise<void> {
  await trx.deleteFrom("installation_secrets").where("tenant_id", "=", tenantId).where("installation_id", "=", installationId).execute();
}
