import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";

// How a GitHub App's JWT is signed: RS256 (RSASSA-PKCS1-v1_5 with SHA-256) by a key that Keyplane
// holds (memory: the PEM an operator gave, today's behaviour) or one it never sees (pkcs11: a key on
// a PKCS#11 token, an HSM; aws-kms: an asymmetric AWS KMS key). appJwt.ts builds the JWT and asks the
// app's signer for the signature; githubApps.ts checks every signer at start (checkSigner below).
//
// Nothing a signer says (errors, `where`) carries a PIN, a key or a signature.

export type SignerKind = "memory" | "pkcs11" | "aws-kms";
export const SIGNER_KINDS: readonly SignerKind[] = ["memory", "pkcs11", "aws-kms"];

export interface JwtSigner {
  readonly kind: SignerKind;
  /** Where the key is, for logs and errors (`memory`, `pkcs11 token "ci" key label "rex"`, `aws-kms key … in eu-west-1`): never a secret. */
  readonly where: string;
  /** The RS256 signature of `data` (the JWT's signing input). Throws SignerError. */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** The key's public half, read from where the key is. Throws SignerError. */
  publicKey(): Promise<KeyObject>;
  /** Releases the session or client once calls under way are done; signing afterwards fails. Idempotent. */
  close(): Promise<void>;
}

/**
 * A signer that could not sign or find its key. `transient`: the token or KMS may answer later (a
 * removed token, throttling, a network failure); otherwise the configuration or the key is wrong.
 * The message names the problem, never a PIN, a key or a signature.
 */
export class SignerError extends Error {
  constructor(
    message: string,
    readonly transient = false,
  ) {
    super(message);
    this.name = "SignerError";
  }
}

/** What checkSigner found: the public key's fingerprint and size, for the start-up log. */
export interface SignerCheck {
  keyFingerprint: string;
  bits: number;
}

const PROBE = new TextEncoder().encode("keyplane: GitHub App signer check");

/**
 * At start: the signer's public key is RSA of 2048 bits or more, and a signature it makes verifies
 * with it (so the PIN, the key's usage and the permission to sign are all right before the first
 * token is asked for). Throws SignerError naming the problem.
 */
export async function checkSigner(signer: JwtSigner): Promise<SignerCheck> {
  const publicKey = await signer.publicKey();
  if (publicKey.asymmetricKeyType !== "rsa")
    throw new SignerError(`${signer.where} is not an RSA key (${publicKey.asymmetricKeyType ?? "unknown type"}); GitHub Apps sign with RS256`);
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw new SignerError(`${signer.where} is an RSA key of ${bits} bits; RS256 needs 2048 or more`);
  const signature = await signer.sign(PROBE);
  if (!verify("sha256", PROBE, publicKey, signature))
    throw new SignerError(`${signer.where}: its signature does not verify with its public key (is the public key another key's?)`);
  return { keyFingerprint: keyFingerprint(publicKey), bits };
}

/** sha256 of the public key (SPKI DER), 16 hex characters: tells keys apart in logs without revealing one. Takes a private or a public key. */
export function keyFingerprint(key: KeyObject): string {
  const publicKey = key.type === "public" ? key : createPublicKey(key);
  const der = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}
