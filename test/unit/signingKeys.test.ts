import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSigningKeys, SigningKeyError } from "../../src/auth/signingKeys.ts";

describe("Keyplane's signing key", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "keyplane-keys-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is generated once into the data directory (0600) for the embedded default, and reused", async () => {
    const first = await loadSigningKeys({ dataDir: dir, allowGenerate: true });
    const file = path.join(dir, "signing-key.pem");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = await loadSigningKeys({ dataDir: dir, allowGenerate: true });
    expect(again.current.kid).toBe(first.current.kid);
    expect(first.jwks.keys[0]).not.toHaveProperty("d");
  });

  it("is never generated where processes share a database: the message says what to set", async () => {
    const shared = path.join(dir, "shared");
    await expect(loadSigningKeys({ dataDir: shared, allowGenerate: false })).rejects.toThrow(/KEYPLANE_SIGNING_KEY is not set/);
  });

  it("refuses a key that is not an EC P-256 private key, without printing it", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const wrongType = await loadSigningKeys({ pem: rsa, dataDir: dir, allowGenerate: false }).catch((e) => e);
    expect(wrongType).toBeInstanceOf(SigningKeyError);
    expect(wrongType.message).toMatch(/EC P-256/);
    expect(wrongType.message).not.toContain(rsa.slice(40, 80));
    const garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n";
    const notKey = await loadSigningKeys({ pem: garbage, dataDir: dir, allowGenerate: false }).catch((e) => e);
    expect(notKey).toBeInstanceOf(SigningKeyError);
    expect(notKey.message).not.toContain("bm90IGEga2V5");
  });
});
