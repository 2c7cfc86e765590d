import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from "node:crypto";

// Envelope encryption for secrets at rest: AES-256-GCM, a fresh 12-byte IV per value, the key id
// beside the ciphertext, and additional authenticated data naming the row and field the value
// belongs to, so a ciphertext copied into another row does not decrypt.
//   kp1.<keyId>.<iv>.<ciphertext>.<tag>   (base64url parts)

const ENVELOPE_VERSION = "kp1";
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class KeyringError extends Error {}

/** Raised for a value that does not decrypt: wrong key, tampered bytes, or moved to another row. */
export class DecryptionError extends Error {
  constructor(readonly keyId: string) {
    super(`a stored secret under key ${keyId} failed to decrypt (wrong key, altered, or moved to another row)`);
  }
}

export interface Keyring {
  readonly currentKeyId: string;
  readonly keyIds: readonly string[];
  encrypt(plaintext: string, aad: string): string;
  decrypt(envelope: string, aad: string): string;
  keyIdOf(envelope: string): string;
}

/** Parses `id:base64key,…` (first is current). Key material never appears in an error. */
export function parseKeyring(spec: string): Keyring {
  const keys = new Map<string, KeyObject>();
  let currentKeyId: string | undefined;
  for (const [index, entry] of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .entries()) {
    const colon = entry.indexOf(":");
    const id = colon > 0 ? entry.slice(0, colon) : "";
    if (!KEY_ID.test(id)) throw new KeyringError(`KEYPLANE_ENCRYPTION_KEYS entry ${index + 1}: expected id:base64key with an id of letters, digits, _ or -`);
    if (keys.has(id)) throw new KeyringError(`KEYPLANE_ENCRYPTION_KEYS: key id ${id} appears twice`);
    const material = Buffer.from(entry.slice(colon + 1), "base64");
    try {
      if (material.length !== 32) throw new KeyringError(`KEYPLANE_ENCRYPTION_KEYS: key ${id} must be 32 bytes of base64 (got ${material.length})`);
      keys.set(id, createSecretKey(material));
    } finally {
      material.fill(0); // the KeyObject holds its own copy
    }
    currentKeyId ??= id;
  }
  if (!currentKeyId) throw new KeyringError("KEYPLANE_ENCRYPTION_KEYS holds no key");
  const current = currentKeyId;

  function keyFor(id: string): KeyObject {
    const key = keys.get(id);
    if (!key) throw new KeyringError(`a stored secret is encrypted under key ${id}, which is not in KEYPLANE_ENCRYPTION_KEYS`);
    return key;
  }

  return {
    currentKeyId: current,
    keyIds: [...keys.keys()],
    encrypt(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", keyFor(current), iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(aad, "utf8"));
      const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return [ENVELOPE_VERSION, current, iv.toString("base64url"), ciphertext.toString("base64url"), cipher.getAuthTag().toString("base64url")].join(".");
    },
    decrypt(envelope, aad) {
      const parts = envelope.split(".");
      const [version, keyId, iv, ciphertext, tag] = parts;
      // Exactly five parts of strict base64url, a 12-byte IV and a full 16-byte tag: GCM would
      // otherwise verify a truncated tag (a 4-byte tag is forged in 2^32 tries), and a malformed IV
      // or tag would surface as a bare TypeError instead of a DecryptionError.
      const named = keyId !== undefined && KEY_ID.test(keyId) ? keyId : "unknown";
      if (parts.length !== 5 || version !== ENVELOPE_VERSION || named === "unknown" || !parts.slice(2).every((p) => BASE64URL.test(p ?? "")))
        throw new DecryptionError(named);
      const key = keyFor(named);
      const ivBytes = Buffer.from(iv!, "base64url");
      const tagBytes = Buffer.from(tag!, "base64url");
      if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) throw new DecryptionError(named);
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, ivBytes, { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(aad, "utf8"));
        decipher.setAuthTag(tagBytes);
        return Buffer.concat([decipher.update(Buffer.from(ciphertext!, "base64url")), decipher.final()]).toString("utf8");
      } catch {
        throw new DecryptionError(named);
      }
    },
    keyIdOf(envelope) {
      return envelope.split(".")[1] ?? "";
    },
  };
}

/** A new `id:base64key` entry for KEYPLANE_ENCRYPTION_KEYS. */
export function generateKeyEntry(now = new Date()): string {
  const id = `k${now.toISOString().slice(0, 10).replace(/-/g, "")}${randomBytes(2).toString("hex")}`;
  return `${id}:${randomBytes(32).toString("base64")}`;
}

/**
 * The keyring from KEYPLANE_ENCRYPTION_KEYS, or (embedded database only) from a key generated once
 * into the data dir with mode 0600. Processes sharing a PostgreSQL must share the keys, so there
 * nothing is generated.
 */
export function loadKeyring(options: { spec?: string; dataDir: string; allowGenerate: boolean }): Keyring {
  if (options.spec) return parseKeyring(options.spec);
  if (!options.allowGenerate) {
    throw new KeyringError("KEYPLANE_ENCRYPTION_KEYS is required when DATABASE_URL is set or NODE_ENV=production (generate one with `keyplane keys generate`)");
  }
  const file = path.join(options.dataDir, "encryption-keys");
  if (!existsSync(file)) {
    mkdirSync(options.dataDir, { recursive: true });
    writeFileSync(file, `${generateKeyEntry()}\n`, { mode: 0o600, flag: "wx" });
  }
  chmodSync(file, 0o600);
  return parseKeyring(readFileSync(file, "utf8").trim());
}
