import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, type JWK } from "jose";

export const SIGNING_ALG = "ES256";

export interface SigningKeys {
  current: { kid: string; privateKey: KeyObject };
  /** Public keys accepted for verification: the current one and any previous ones during rotation. */
  jwks: { keys: JWK[] };
}

export class SigningKeyError extends Error {}

/**
 * Keyplane's own ES256 key. From KEYPLANE_SIGNING_KEY (PKCS#8 PEM) when set; otherwise generated once
 * into the data directory (mode 0600), which suits the embedded single-process default only.
 */
export async function loadSigningKeys(options: { pem?: string; previousPems?: string; dataDir: string; allowGenerate: boolean }): Promise<SigningKeys> {
  const pem = options.pem ?? readOrGenerate(options.dataDir, options.allowGenerate);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new SigningKeyError("KEYPLANE_SIGNING_KEY is not a PKCS#8 PEM private key");
  }
  if (privateKey.asymmetricKeyType !== "ec" || privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new SigningKeyError("KEYPLANE_SIGNING_KEY must be an EC P-256 key (ES256)");
  }
  const current = await publicJwk(createPublicKey(privateKey));
  const previous = await Promise.all(splitPems(options.previousPems ?? "").map((p) => publicJwk(createPublicKey(p))));
  return { current: { kid: current.kid!, privateKey }, jwks: { keys: [current, ...previous.filter((k) => k.kid !== current.kid)] } };
}

async function publicJwk(key: KeyObject): Promise<JWK> {
  const jwk = await exportJWK(key);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: SIGNING_ALG, use: "sig" };
}

function readOrGenerate(dataDir: string, allowGenerate: boolean): string {
  const file = path.resolve(dataDir, "signing-key.pem");
  if (existsSync(file)) return readFileSync(file, "utf8");
  if (!allowGenerate) {
    throw new SigningKeyError("KEYPLANE_SIGNING_KEY is not set; every process sharing a database must use the same key");
  }
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, pem, { mode: 0o600, flag: "wx" });
  return pem;
}

function splitPems(text: string): string[] {
  return text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
}
