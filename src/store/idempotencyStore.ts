import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { withTenant, type Db } from "./db.ts";

const TTL_MS = 24 * 3600_000;

export type IdempotencyClaim =
  | { status: "claimed" }
  | { status: "replay"; response: unknown }
  | { status: "mismatch" }
  | { status: "in-progress" };

export interface IdempotencyKeyRef {
  tenantId: string;
  principal: string;
  key: string;
  requestHash: string;
}

const derive = (label: string, ref: IdempotencyKeyRef) =>
  createHash("sha256").update(`keyplane-idempotency:${label}\0${ref.tenantId}\0${ref.principal}\0${ref.key}`).digest();

/**
 * Claims an Idempotency-Key for one principal: the first request claims it, later ones with the same
 * request replay the stored response, a different request under the same key is a mismatch.
 */
export async function claimIdempotencyKey(db: Db, ref: IdempotencyKeyRef, now: Date): Promise<IdempotencyClaim> {
  const keyHash = derive("id", ref).toString("hex");
  return withTenant(db, ref.tenantId, async (trx) => {
    await trx.deleteFrom("idempotency_keys").where("tenant_id", "=", ref.tenantId).where("key_hash", "=", keyHash).where("expires_at", "<", now).execute();
    const inserted = await trx
      .insertInto("idempotency_keys")
      .values({ tenant_id: ref.tenantId, key_hash: keyHash, request_hash: ref.requestHash, status: "pending", response: null, expires_at: new Date(now.getTime() + TTL_MS) })
      .onConflict((oc) => oc.columns(["tenant_id", "key_hash"]).doNothing())
      .returning("key_hash")
      .executeTakeFirst();
    if (inserted) return { status: "claimed" };
    const row = await trx.selectFrom("idempotency_keys").selectAll().where("tenant_id", "=", ref.tenantId).where("key_hash", "=", keyHash).executeTakeFirstOrThrow();
    if (row.request_hash !== ref.requestHash) return { status: "mismatch" };
    if (row.status === "pending" || !row.response) return { status: "in-progress" };
    return { status: "replay", response: JSON.parse(decrypt(derive("enc", ref), row.response)) };
  });
}

/** Stores the first response, encrypted under a key only the holder of the Idempotency-Key can derive. */
export async function completeIdempotencyKey(db: Db, ref: IdempotencyKeyRef, response: unknown): Promise<void> {
  const keyHash = derive("id", ref).toString("hex");
  await withTenant(db, ref.tenantId, (trx) =>
    trx
      .updateTable("idempotency_keys")
      .set({ status: "done", response: encrypt(derive("enc", ref), JSON.stringify(response)) })
      .where("tenant_id", "=", ref.tenantId)
      .where("key_hash", "=", keyHash)
      .execute(),
  );
}

/** Frees a claim whose request failed before producing a response, so the client may retry. */
export async function releaseIdempotencyKey(db: Db, ref: IdempotencyKeyRef): Promise<void> {
  const keyHash = derive("id", ref).toString("hex");
  await withTenant(db, ref.tenantId, (trx) =>
    trx.deleteFrom("idempotency_keys").where("tenant_id", "=", ref.tenantId).where("key_hash", "=", keyHash).where("status", "=", "pending").execute(),
  );
}

function encrypt(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
}

function decrypt(key: Buffer, encoded: string): string {
  const raw = Buffer.from(encoded, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
}
