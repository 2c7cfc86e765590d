import type { Keyring } from "../../crypto/keyring.ts";
import type { Tx } from "../../store/db.ts";

// Issued GitHub tokens are kept (encrypted, row-bound) only so they can be revoked at GitHub, which
// authenticates DELETE /installation/token with the token itself. Gone on revocation or expiry.

const aad = (tenantId: string, fp: string) => `github_token:${tenantId}:${fp}`;

export async function storeTokenSecret(trx: Tx, keyring: Keyring, tenantId: string, fp: string, token: string, expiresAt: Date): Promise<void> {
  await trx
    .insertInto("github_token_secrets")
    .values({ tenant_id: tenantId, fingerprint: fp, key_id: keyring.currentKeyId, token: keyring.encrypt(token, aad(tenantId, fp)), expires_at: expiresAt })
    .onConflict((oc) => oc.columns(["tenant_id", "fingerprint"]).doNothing())
    .execute();
}

export async function readTokenSecret(trx: Tx, keyring: Keyring, tenantId: string, fp: string): Promise<string | null> {
  const row = await trx.selectFrom("github_token_secrets").select("token").where("tenant_id", "=", tenantId).where("fingerprint", "=", fp).executeTakeFirst();
  return row ? keyring.decrypt(row.token, aad(tenantId, fp)) : null;
}

/** Re-encrypts the token under the keyring's current key (keys rotate), the row locked meanwhile. */
export async function reencryptTokenSecret(trx: Tx, keyring: Keyring, tenantId: string, fp: string): Promise<void> {
  const row = await trx
    .selectFrom("github_token_secrets")
    .select("token")
    .where("tenant_id", "=", tenantId)
    .where("fingerprint", "=", fp)
    .forUpdate()
    .executeTakeFirst();
  if (!row || keyring.keyIdOf(row.token) === keyring.currentKeyId) return;
  const token = keyring.encrypt(keyring.decrypt(row.token, aad(tenantId, fp)), aad(tenantId, fp));
  await trx
    .updateTable("github_token_secrets")
    .set({ token, key_id: keyring.currentKeyId })
    .where("tenant_id", "=", tenantId)
    .where("fingerprint", "=", fp)
    .execute();
}

export async function forgetTokenSecret(trx: Tx, tenantId: string, fp: string): Promise<void> {
  await trx.deleteFrom("github_token_secrets").where("tenant_id", "=", tenantId).where("fingerprint", "=", fp).execute();
}
