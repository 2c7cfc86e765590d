import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { sql } from "kysely";
import { withTenant, type Db } from "./db.ts";

const TTL_MS = 24 * 3600_000;

export type IdempotencyLookup = { status: "new" } | { status: "replay"; response: unknown } | { status: "mismatch" } | { status: "in-progress" };

export interface IdempotencyKeyRef {
  tenantId: string;
  /** The principal the key belongs to: kind, subject, roles and scopes (see idempotencyPlugin). */
  principal: string;
  key: string;
  requestHash: string;
}

const derive = (label: string, ref: IdempotencyKeyRef) =>
  createHash("sha256").update(`keyplane-idempotency:${label}\0${ref.tenantId}\0${ref.principal}\0${ref.key}`).digest();

/**
 * Called inside the request's one transaction (runInOneTransaction): takes the key's transaction
 * lock, so a concurrent request with the same key is told it is in progress, and looks for the
 * response stored by an earlier, committed request. The lock and the response live and die with
 * transactions: a request that never committed (it failed, or its process died) left nothing, so
 * its retry runs; one that committed left its response, so its retry gets it.
 */
export async function lookUpIdempotencyKey(db: Db, ref: IdempotencyKeyRef, now: Date): Promise<IdempotencyLookup> {
  const keyHash = derive("id", ref).toString("hex");
  return withTenant(db, ref.tenantId, async (trx) => {
    const { rows } = await sql<{
      locked: boolean;
    }>`select pg_try_advisory_xact_lock(hashtextextended(${`idempotency:${ref.tenantId}:${keyHash}`}, 0)) as locked`.execute(trx);
    if (!rows[0]!.locked) return { status: "in-progress" };
    // Expired keys are forgotten; so are claims left 'pending' by a Keyplane before issue 14, whose
    // requests committed nothing with them.
    await trx
      .deleteFrom("idempotency_keys")
      .where("tenant_id", "=", ref.tenantId)
      .where("key_hash", "=", keyHash)
      .where((eb) => eb.or([eb("expires_at", "<", now), eb("status", "=", "pending")]))
      .execute();
    const row = await trx
      .selectFrom("idempotency_keys")
      .select(["request_hash", "response"])
      .where("tenant_id", "=", ref.tenantId)
      .where("key_hash", "=", keyHash)
      .executeTakeFirst();
    if (!row) return { status: "new" };
    if (row.request_hash !== ref.requestHash) return { status: "mismatch" };
    return { status: "replay", response: JSON.parse(decrypt(derive("enc", ref), row.response!)) };
  });
}

/** Stores the response, in the same transaction as the request's writes, encrypted under a key only the holder of the Idempotency-Key can derive. */
export async function storeIdempotentResponse(db: Db, ref: IdempotencyKeyRef, response: unknown, now: Date): Promise<void> {
  const keyHash = derive("id", ref).toString("hex");
  await withTenant(db, ref.tenantId, (trx) =>
    trx
      .insertInto("idempotency_keys")
      .values({
        tenant_id: ref.tenantId,
        key_hash: keyHash,
        request_hash: ref.requestHash,
        status: "done",
        response: encrypt(derive("enc", ref), JSON.stringify(response)),
        expires_at: new Date(now.getTime() + TTL_MS),
      })
      .execute(),
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
