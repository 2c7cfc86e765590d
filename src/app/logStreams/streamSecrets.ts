import type { Keyring } from "../../crypto/keyring.ts";
import type { DestinationSecrets } from "../../logStreams/destinations.ts";
import type { Tx } from "../../store/db.ts";

// A log stream's destination URL (its query may carry a token) and secrets, as one AES-GCM envelope
// whose additional data names the tenant and the stream: copied to another row, it does not decrypt.

const aad = (tenantId: string, logStreamId: string) => `log_stream:${tenantId}:${logStreamId}`;

export async function storeStreamSecrets(
  trx: Tx,
  keyring: Keyring,
  tenantId: string,
  logStreamId: string,
  secrets: DestinationSecrets,
  now: Date,
): Promise<void> {
  const row = { key_id: keyring.currentKeyId, ciphertext: keyring.encrypt(JSON.stringify(secrets), aad(tenantId, logStreamId)), updated_at: now };
  await trx
    .insertInto("log_stream_secrets")
    .values({ tenant_id: tenantId, log_stream_id: logStreamId, ...row })
    .onConflict((oc) => oc.columns(["tenant_id", "log_stream_id"]).doUpdateSet(row))
    .execute();
}

/** The stream's secrets; `forUpdate` holds the row for the rest of the transaction. */
export async function readStreamSecrets(
  trx: Tx,
  keyring: Keyring,
  tenantId: string,
  logStreamId: string,
  forUpdate = false,
): Promise<DestinationSecrets | null> {
  let query = trx.selectFrom("log_stream_secrets").select("ciphertext").where("tenant_id", "=", tenantId).where("log_stream_id", "=", logStreamId);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? (JSON.parse(keyring.decrypt(row.ciphertext, aad(tenantId, logStreamId))) as DestinationSecrets) : null;
}

export async function forgetStreamSecrets(trx: Tx, tenantId: string, logStreamId: string): Promise<void> {
  await trx.deleteFrom("log_stream_secrets").where("tenant_id", "=", tenantId).where("log_stream_id", "=", logStreamId).execute();
}
