import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
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
    await expect(loadSigningKeys({ dataDir: mkdtempSync(path.join(tmpdir(), "keyplane-keys-")), allowGenerate: false })).rejects.toThrow(/KEYPLANE_SIGNING_KEY is not set/);
  });

  it("refuses a key that is not an EC P-256 private key, without printing it", async () => {
    const pem = readFileSync(path.join(dir, "signing-key.pem"), "utf8");
    const garbage = pem.replace(/[A-Za-z]{20}/, "x".repeat(20));
    const error = await loadSigningKeys({ pem: garbage, dataDir: dir, allowGenerate: false }).catch((e) => e);
    expect(error).toBeInstanceOf(SigningKeyError);
    expect(String(error.message)).not.toContain(garbage.slice(40, 80));
  });
});
