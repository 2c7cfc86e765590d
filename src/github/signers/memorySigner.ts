import { createPublicKey, sign, type KeyObject } from "node:crypto";
import type { JwtSigner } from "./jwtSigner.ts";

// The key in Keyplane's memory: the KeyObject src/github/privateKey.ts parsed from the operator's PEM
// (the PEM text itself is never kept). Signing is node's RSASSA-PKCS1-v1_5 with SHA-256, which is RS256.

export function memorySigner(privateKey: KeyObject): JwtSigner {
  return {
    kind: "memory",
    where: "the private key",
    sign: async (data) => sign("sha256", data, privateKey),
    publicKey: async () => createPublicKey(privateKey),
    close: async () => {},
  };
}
