import { fingerprint } from "../../crypto/fingerprint.ts";
import type { Keyring } from "../../crypto/keyring.ts";
import type { IdentityTokenFacts } from "../../domain/identity/decide.ts";
import type { GitHubUserTokens } from "../../github/userAuthorization.ts";
import type { Tx } from "../../store/db.ts";

// A linked identity's user token and refresh token as AES-GCM envelopes. Each value's additional
// authenticated data names its tenant, identity and field, so a ciphertext moved to another row or
// column refuses to decrypt.

const aad = (tenantId: string, identityId: string, field: "access_token" | "refresh_token") => `identity:${tenantId}:${identityId}:${field}`;

/** Encrypts and stores the tokens beside the event that names their fingerprints; returns those facts. */
export async function storeIdentityTokens(
  trx: Tx,
  keyring: Keyring,
  tenantId: string,
  identityId: string,
  tokens: GitHubUserTokens,
  now: Date,
): Promise<IdentityTokenFacts> {
  const row = {
    key_id: keyring.currentKeyId,
    access_token: keyring.encrypt(tokens.accessToken, aad(tenantId, identityId, "access_token")),
    refresh_token: tokens.refreshToken ? keyring.encrypt(tokens.refreshToken, aad(tenantId, identityId, "refresh_token")) : null,
    access_expires_at: tokens.accessExpiresAt ?? null,
    refresh_expires_at: tokens.refreshExpiresAt ?? null,
    updated_at: now,
  };
  await trx
    .insertInto("identity_secrets")
    .values({ tenant_id: tenantId, identity_id: identityId, ...row })
    .onConflict((oc) => oc.columns(["tenant_id", "identity_id"]).doUpdateSet(row))
    .execute();
  return {
    accessFingerprint: fingerprint(tokens.accessToken),
    ...(tokens.accessExpiresAt ? { accessExpiresAt: tokens.accessExpiresAt.toISOString() } : {}),
    ...(tokens.refreshToken ? { refreshFingerprint: fingerprint(tokens.refreshToken) } : {}),
    ...(tokens.refreshExpiresAt ? { refreshExpiresAt: tokens.refreshExpiresAt.toISOString() } : {}),
    keyId: keyring.currentKeyId,
  };
}

/** Decrypts an identity's tokens; `forUpdate` holds the row for the rest of the transaction. */
export async function readIdentityTokens(trx: Tx, keyring: Keyring, tenantId: string, identityId: string, forUpdate = false): Promise<GitHubUserTokens | null> {
  let query = trx.selectFrom("identity_secrets").selectAll().where("tenant_id", "=", tenantId).where("identity_id", "=", identityId);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (!row) return null;
  return {
    accessToken: keyring.decrypt(row.access_token, aad(tenantId, identityId, "access_token")),
    ...(row.refresh_token ? { refreshToken: keyring.decrypt(row.refresh_token, aad(tenantId, identityId, "refresh_token")) } : {}),
    ...(row.access_expires_at ? { accessExpiresAt: new Date(row.access_expires_at) } : {}),
    ...(row.refresh_expires_at ? { refreshExpiresAt: new Date(row.refresh_expires_at) } : {}),
  };
}

export async function forgetIdentityTokens(trx: Tx, tenantId: string, identityId: string): Promise<void> {
  await trx.deleteFrom("identity_secrets").where("tenant_id", "=", tenantId).where("identity_id", "=", identityId).execute();
}
