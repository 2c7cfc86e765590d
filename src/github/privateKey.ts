import { createPrivateKey, type KeyObject } from "node:crypto";
import { keyFingerprint } from "./signers/jwtSigner.ts";

// A GitHub App's private key, from the PEM an operator gives to the KeyObject every JWT is signed
// with. Nothing here keeps, logs or quotes key material: problems are named ("not an RSA key",
// "truncated PEM"), buffers made here are zeroed, and keys are told apart by a public fingerprint.

/**
 * A GitHub App's private key as a KeyObject: RSA (PKCS#1 "BEGIN RSA PRIVATE KEY" or PKCS#8 "BEGIN
 * PRIVATE KEY"), 2048 bits or more, PEM with real line breaks or literal `\n` (a one-line env value).
 * Anything else throws `fail(problem)`, where the problem never quotes the key.
 * Buffers made here are zeroed; `pem` is the caller's to zero.
 */
export function parsePrivateKey(pem: Buffer, fail: (problem: string) => Error): KeyObject {
  let buffer = pem;
  const owned: Buffer[] = [];
  try {
    if (buffer.includes("\\n")) {
      buffer = unescapeNewlines(buffer);
      owned.push(buffer);
    }
    const has = (marker: string) => buffer.includes(marker);
    if (!has("-----BEGIN ")) throw fail("is not a PEM private key (no -----BEGIN line)");
    if (has("-----BEGIN ENCRYPTED PRIVATE KEY-----") || has("Proc-Type: 4,ENCRYPTED")) throw fail("is encrypted; give the key without a passphrase");
    if (has("-----BEGIN OPENSSH PRIVATE KEY-----")) throw fail("is in OpenSSH format; GitHub's PEM download (BEGIN RSA PRIVATE KEY) is needed");
    if (has("-----BEGIN EC PRIVATE KEY-----")) throw fail("is not an RSA key (EC); GitHub Apps sign with RS256");
    if (!has("-----BEGIN RSA PRIVATE KEY-----") && !has("-----BEGIN PRIVATE KEY-----")) {
      if (has("PUBLIC KEY-----") || has("-----BEGIN CERTIFICATE-----")) throw fail("holds a public key or certificate, not the private key");
      throw fail("is not a PEM private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)");
    }
    if (!has("-----END ")) throw fail("is truncated (no -----END line); a one-line value must write line breaks as \\n");
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: buffer, format: "pem" });
    } catch {
      throw fail("is not a valid PEM private key (damaged or truncated)");
    }
    if (key.asymmetricKeyType !== "rsa") throw fail(`is not an RSA key (${key.asymmetricKeyType ?? "unknown type"}); GitHub Apps sign with RS256`);
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw fail(`is an RSA key of ${bits} bits; RS256 needs 2048 or more`);
    return key;
  } finally {
    for (const b of owned) b.fill(0);
  }
}

/** `\n` written as two characters (backslash, n) -> a line break; `\r` likewise dropped. */
function unescapeNewlines(input: Buffer): Buffer {
  const out = Buffer.alloc(input.length);
  let j = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!;
    if (byte === 0x5c && (input[i + 1] === 0x6e || input[i + 1] === 0x72)) {
      if (input[i + 1] === 0x6e) out[j++] = 0x0a;
      i++;
      continue;
    }
    out[j++] = byte;
  }
  const result = Buffer.from(out.subarray(0, j));
  out.fill(0);
  return result;
}

/** sha256 of the public key (SPKI DER), 16 hex characters: tells keys apart in logs without revealing one (the same for a key in an HSM or KMS: signers/jwtSigner.ts). */
export function publicKeyFingerprint(privateKey: KeyObject): string {
  return keyFingerprint(privateKey);
}
