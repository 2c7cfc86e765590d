import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DecryptionError, generateKeyEntry, KeyringError, loadKeyring, parseKeyring } from "../../src/crypto/keyring.ts";

const material = (bytes = 32) => randomBytes(bytes).toString("base64");
const aad = (installationId: string) => `installation:t-acme:${installationId}:access_token`;

/** Replaces one base64url character of an envelope part with another valid one. */
function flip(envelope: string, part: number, at = 0): string {
  const parts = envelope.split(".");
  const value = parts[part]!;
  const c = value[at]!;
  parts[part] = value.slice(0, at) + (c === "A" ? "B" : "A") + value.slice(at + 1);
  return parts.join(".");
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a failure");
}

describe("keyring: AES-256-GCM envelopes", () => {
  const k1 = material();
  const k2 = material();
  const keyring = parseKeyring(`k1:${k1}`);

  it("round-trips a value, including one of kilobytes and non-ASCII text", () => {
    for (const plaintext of ["xoxe.xoxb-1-abc", "ü€ 🔑", "x".repeat(4096), ""]) {
      expect(keyring.decrypt(keyring.encrypt(plaintext, aad("i-1")), aad("i-1"))).toBe(plaintext);
    }
  });

  it("uses a fresh IV per value: encrypting the same value twice gives different envelopes", () => {
    const a = keyring.encrypt("same token", aad("i-1"));
    const b = keyring.encrypt("same token", aad("i-1"));
    expect(a).not.toBe(b);
    const [, , ivA] = a.split(".");
    const [, , ivB] = b.split(".");
    expect(ivA).not.toBe(ivB);
    expect(Buffer.from(ivA!, "base64url")).toHaveLength(12);
  });

  it("names its key id in the envelope, and never holds the plaintext", () => {
    const envelope = keyring.encrypt("the-plain-token-value", aad("i-1"));
    expect(envelope.split(".")).toHaveLength(5);
    expect(envelope.split(".")[0]).toBe("kp1");
    expect(envelope.split(".")[1]).toBe("k1");
    expect(keyring.keyIdOf(envelope)).toBe("k1");
    expect(envelope).not.toContain("the-plain-token-value");
    expect(envelope).not.toContain(Buffer.from("the-plain-token-value").toString("base64url"));
  });

  it("refuses a value moved to another row (other additional authenticated data) with a DecryptionError", () => {
    const envelope = keyring.encrypt("token of installation 1", aad("i-1"));
    const error = errorOf(() => keyring.decrypt(envelope, aad("i-2")));
    expect(error).toBeInstanceOf(DecryptionError);
    expect((error as DecryptionError).keyId).toBe("k1");
    expect(error.message).toContain("k1");
    expect(error.message).not.toContain("token of installation 1");
    // Another field of the same row is another row as far as the envelope is concerned.
    expect(() => keyring.decrypt(envelope, "installation:t-acme:i-1:refresh_token")).toThrow(DecryptionError);
  });

  it("refuses tampered ciphertext, IV, tag or key id", () => {
    const envelope = keyring.encrypt("a token long enough to flip a byte in", aad("i-1"));
    for (const part of [2, 3, 4]) {
      expect(() => keyring.decrypt(flip(envelope, part), aad("i-1")), `part ${part}`).toThrow(DecryptionError);
      expect(() => keyring.decrypt(flip(envelope, part, 5), aad("i-1")), `part ${part}`).toThrow(DecryptionError);
    }
    // The same bytes relabelled with another key of the ring: that key does not open them.
    const two = parseKeyring(`k2:${k2},k1:${k1}`);
    const relabelled = envelope.replace(".k1.", ".k2.");
    expect(() => two.decrypt(relabelled, aad("i-1"))).toThrow(DecryptionError);
    expect(two.decrypt(envelope, aad("i-1"))).toBe("a token long enough to flip a byte in");
  });

  it("refuses a truncated authentication tag (GCM would otherwise accept a 4-byte tag)", () => {
    const envelope = keyring.encrypt("token", aad("i-1"));
    const parts = envelope.split(".");
    const tag = Buffer.from(parts[4]!, "base64url");
    for (const length of [4, 8, 12, 15]) {
      const truncated = [...parts.slice(0, 4), tag.subarray(0, length).toString("base64url")].join(".");
      expect(() => keyring.decrypt(truncated, aad("i-1")), `${length}-byte tag`).toThrow(DecryptionError);
    }
  });

  it("answers malformed envelopes with a DecryptionError, not a crypto library error", () => {
    const envelope = keyring.encrypt("token", aad("i-1"));
    const [version, id, iv, ciphertext, tag] = envelope.split(".");
    const malformed = [
      "",
      "not an envelope",
      `${version}.${id}.${iv}.${ciphertext}`,
      `${version}.${id}.${iv}.${ciphertext}.${tag}.extra`,
      `kp0.${id}.${iv}.${ciphertext}.${tag}`,
      `${version}.${id}..${ciphertext}.${tag}`,
      `${version}.${id}.${iv}.${ciphertext}.`,
      `${version}.${id}.${iv}AAAA.${ciphertext}.${tag}`,
      `${version}.${id}.${iv}.${ciphertext}.${tag}!`,
    ];
    for (const value of malformed) expect(() => keyring.decrypt(value, aad("i-1")), value.slice(0, 40)).toThrow(DecryptionError);
  });

  it("refuses a value under a key that is not in the ring, naming the key id but not any key", () => {
    const old = parseKeyring(`k0:${material()}`);
    const envelope = old.encrypt("token", aad("i-1"));
    const error = errorOf(() => keyring.decrypt(envelope, aad("i-1")));
    expect(error).toBeInstanceOf(KeyringError);
    expect(error.message).toContain("k0");
    expect(error.message).toContain("KEYPLANE_ENCRYPTION_KEYS");
    expect(error.message).not.toContain(k1);
    expect(error.message).not.toContain(k1.slice(0, 12));
  });

  it("encrypts under the first key and still decrypts under the older ones", () => {
    const old = parseKeyring(`k1:${k1}`);
    const rotated = parseKeyring(` k2:${k2} , k1:${k1} `);
    expect(rotated.currentKeyId).toBe("k2");
    expect(rotated.keyIds).toEqual(["k2", "k1"]);
    const before = old.encrypt("token", aad("i-1"));
    expect(rotated.decrypt(before, aad("i-1"))).toBe("token");
    const after = rotated.encrypt("token", aad("i-1"));
    expect(rotated.keyIdOf(after)).toBe("k2");
    expect(() => old.decrypt(after, aad("i-1"))).toThrow(/key k2/);
  });
});

describe("keyring: KEYPLANE_ENCRYPTION_KEYS parsing", () => {
  const good = material();

  const refused = (spec: string) => {
    const error = errorOf(() => parseKeyring(spec));
    expect(error).toBeInstanceOf(KeyringError);
    return error.message;
  };

  it("refuses a 16-byte (AES-128) key, and any length but 32 bytes, naming the key id only", () => {
    const short = material(16);
    const message = refused(`k1:${short}`);
    expect(message).toMatch(/k1/);
    expect(message).toMatch(/32 bytes/);
    expect(message).toMatch(/16/);
    expect(message).not.toContain(short);
    expect(message).not.toContain(short.slice(0, 8));
    const long = material(48);
    expect(refused(`k1:${good},k2:${long}`)).not.toContain(long.slice(0, 8));
    expect(refused("k1:")).toMatch(/k1.*32 bytes/);
  });

  it("names the entry of a malformed spec but never prints key material", () => {
    const secretish = material();
    const cases: Array<[string, RegExp]> = [
      [secretish, /entry 1/], // the key pasted without an id
      [`k1:${good},${secretish}`, /entry 2/],
      [`bad id!:${secretish}`, /entry 1/],
      [`:${secretish}`, /entry 1/],
      [`${"x".repeat(33)}:${secretish}`, /entry 1/],
      [`k1:${good},k1:${secretish}`, /k1 appears twice/],
    ];
    for (const [spec, expected] of cases) {
      const message = refused(spec);
      expect(message, spec.slice(0, 10)).toMatch(expected);
      expect(message).not.toContain(secretish);
      expect(message).not.toContain(secretish.slice(0, 10));
      expect(message).not.toContain(good.slice(0, 10));
    }
    expect(refused("")).toMatch(/no key/);
    expect(refused(" , ")).toMatch(/no key/);
  });

  it("generates entries that parse into a 32-byte key with a valid id", () => {
    const entry = generateKeyEntry(new Date("2026-03-04T00:00:00Z"));
    expect(entry).toMatch(/^k20260304[0-9a-f]{4}:[A-Za-z0-9+/]+=*$/);
    const keyring = parseKeyring(entry);
    expect(keyring.currentKeyId).toBe(entry.split(":")[0]);
    expect(keyring.decrypt(keyring.encrypt("v", "a"), "a")).toBe("v");
    expect(generateKeyEntry()).not.toBe(generateKeyEntry());
  });
});

describe("keyring: loadKeyring", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(path.join(tmpdir(), "keyplane-keyring-"));
    dirs.push(dir);
    return dir;
  };
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("uses KEYPLANE_ENCRYPTION_KEYS when given, writing nothing", () => {
    const dir = tempDir();
    const keyring = loadKeyring({ spec: `given:${material()}`, dataDir: dir, allowGenerate: true });
    expect(keyring.currentKeyId).toBe("given");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("generates one key file (mode 0600) into the data dir of the embedded database, and reuses it", () => {
    const dataDir = path.join(tempDir(), "nested", "data");
    const first = loadKeyring({ dataDir, allowGenerate: true });
    expect(readdirSync(dataDir)).toEqual(["encryption-keys"]);
    const file = path.join(dataDir, "encryption-keys");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const content = readFileSync(file, "utf8");
    expect(content.trim().split(",")).toHaveLength(1);
    expect(content.trim().startsWith(`${first.currentKeyId}:`)).toBe(true);

    const envelope = first.encrypt("token", "row");
    const second = loadKeyring({ dataDir, allowGenerate: true });
    expect(second.currentKeyId).toBe(first.currentKeyId);
    expect(second.decrypt(envelope, "row")).toBe("token");
    expect(readFileSync(file, "utf8")).toBe(content);
    expect(readdirSync(dataDir)).toEqual(["encryption-keys"]);
  });

  it("tightens a key file left readable by others back to 0600", () => {
    const dataDir = tempDir();
    const file = path.join(dataDir, "encryption-keys");
    writeFileSync(file, `${generateKeyEntry()}\n`);
    chmodSync(file, 0o644);
    loadKeyring({ dataDir, allowGenerate: true });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("refuses to generate a key where processes share a database (allowGenerate false), saying what to set", () => {
    const dataDir = tempDir();
    const error = errorOf(() => loadKeyring({ dataDir, allowGenerate: false }));
    expect(error).toBeInstanceOf(KeyringError);
    expect(error.message).toMatch(/KEYPLANE_ENCRYPTION_KEYS is required/);
    expect(error.message).toMatch(/keys generate/);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});
