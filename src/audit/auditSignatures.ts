import { CompactSign, compactVerify, createLocalJWKSet, decodeProtectedHeader, errors, type JSONWebKeySet } from "jose";
import { base64urlText, type PrivateKey } from "./platform.ts";

// Checkpoints and export trailers are JWS compact serializations (ES256) with Keyplane's signing
// key, verifiable by anyone with the JWKS Keyplane publishes at /.well-known/jwks.json.

const ALG = "ES256";

// One key set per JWKS object: jose imports each key once, not once per checkpoint.
const keySets = new WeakMap<JSONWebKeySet, ReturnType<typeof createLocalJWKSet>>();
function keySetOf(keys: JSONWebKeySet) {
  let set = keySets.get(keys);
  if (!set) keySets.set(keys, (set = createLocalJWKSet(keys)));
  return set;
}

export interface AuditSigner {
  /** kid of the key that signs now. */
  kid: string;
  sign(typ: string, payload: object): Promise<string>;
}

export function createAuditSigner(key: { kid: string; privateKey: PrivateKey }): AuditSigner {
  return {
    kid: key.kid,
    sign: (typ, payload) =>
      new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: ALG, kid: key.kid, typ }).sign(key.privateKey),
  };
}

export type SignatureCheck<T> = { ok: true; payload: T; kid: string } | { ok: false; reason: string; payload?: T; kid?: string };

/**
 * Verifies a JWS against the JWKS (or, without keys, only decodes it: the caller reports the
 * signature as unchecked). The `typ` must match, so a trailer cannot pass for a checkpoint.
 */
export async function checkAuditJws<T>(jws: string, typ: string, keys: JSONWebKeySet | undefined): Promise<SignatureCheck<T>> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  let payload: T;
  try {
    header = decodeProtectedHeader(jws);
    const part = jws.split(".")[1];
    if (part === undefined || jws.split(".").length !== 3) throw new Error("not compact");
    payload = JSON.parse(base64urlText(part)) as T;
  } catch {
    return { ok: false, reason: "not a JWS compact serialization" };
  }
  const kid = typeof header.kid === "string" ? header.kid : undefined;
  if (header.typ !== typ) return { ok: false, reason: `JWS typ is ${JSON.stringify(header.typ)}, expected ${typ}`, payload, kid };
  if (header.alg !== ALG) return { ok: false, reason: `JWS alg is ${JSON.stringify(header.alg)}, expected ${ALG}`, payload, kid };
  if (!keys) return { ok: true, payload, kid: kid ?? "" };
  try {
    await compactVerify(jws, keySetOf(keys), { algorithms: [ALG] });
    return { ok: true, payload, kid: kid ?? "" };
  } catch (error) {
    if (error instanceof errors.JWKSNoMatchingKey) return { ok: false, reason: `no key ${kid ?? "(no kid)"} in the JWKS`, payload, kid };
    if (error instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: "bad signature", payload, kid };
    return { ok: false, reason: (error as Error).message, payload, kid };
  }
}
