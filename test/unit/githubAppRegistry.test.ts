import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { compactVerify, decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { createGitHubApps } from "../../src/github/githubApps.ts";
import { GitHubAppConfigError, loadGitHubApps, type WatchedGitHubAppRegistry } from "../../src/github/appRegistry.ts";
import { publicKeyFingerprint } from "../../src/github/privateKey.ts";
import type { GitHubApp } from "../../src/github/types.ts";
import { createLogger, type Logger } from "../../src/logger.ts";
import { createMetrics } from "../../src/metrics.ts";
import { startFakeGitHub, type FakeGitHub } from "../fakes/github.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { waitFor } from "../testkit/waitFor.ts";

// The named GitHub Apps from env and from mounted secret files: validation that names the app and the
// problem and never the key, the unnamed legacy variables, and rotation of mounted files (a Kubernetes
// `..data` symlink swap) that the next token request uses with no failed request.

const keys: string[] = [];
/** A fresh RSA key as PEM; its base64 lines are registered so a log that shows one fails the run. */
function rsaPem(format: "pkcs1" | "pkcs8" = "pkcs1", modulusLength = 2048): string {
  const pem = generateKeyPairSync("rsa", { modulusLength }).privateKey.export({ type: format, format: "pem" }).toString();
  remember(pem);
  return pem;
}
function remember(pem: string) {
  keys.push(pem);
  for (const line of pem.split("\n")) if (line && !line.startsWith("-----")) registerSecret(line);
}
/** Every base64 line of every key made here: none may show in an error or a log line. */
function expectNoKeyMaterial(text: string) {
  for (const pem of keys) for (const line of pem.split("\n")) if (line.length >= 16 && !line.startsWith("-----")) expect(text).not.toContain(line);
  expect(text).not.toMatch(/MII[A-Za-z0-9+/]{8}/);
}

function memoryLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", destination: { write: (s: string) => void lines.push(s) } }) };
}

function configError(fn: () => unknown): GitHubAppConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(GitHubAppConfigError);
    expect(error).toBeInstanceOf(ConfigError);
    expectNoKeyMaterial(`${(error as Error).message}\n${(error as Error).stack}`);
    return error as GitHubAppConfigError;
  }
  throw new Error("expected a GitHubAppConfigError");
}

const samePublicKey = (a: KeyObject, pem: string) => publicKeyFingerprint(a) === publicKeyFingerprint(createPrivateKey(pem));

const tmp = mkdtempSync(path.join(tmpdir(), "keyplane-github-apps-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => {
  const dir = path.join(tmp, `apps-${++dirCount}`);
  mkdirSync(dir);
  return dir;
};

/**
 * An app directory the way a Kubernetes Secret volume lays it out: each file a symlink through `..data`,
 * which points at a timestamped directory; an update writes a new one and swaps `..data` atomically.
 */
function kubernetesSecret(root: string, name: string, files: Record<string, string>) {
  const dir = path.join(root, name);
  mkdirSync(dir);
  let version = 0;
  const write = (content: Record<string, string>) => {
    const target = `..2025_01_01_00_00_0${++version}`;
    mkdirSync(path.join(dir, target));
    for (const [file, value] of Object.entries(content)) writeFileSync(path.join(dir, target, file), value);
    symlinkSync(target, path.join(dir, "..data_tmp"));
    renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data")); // atomic swap
    if (version > 1) rmSync(path.join(dir, `..2025_01_01_00_00_0${version - 1}`), { recursive: true, force: true });
    for (const file of Object.keys(content)) {
      try {
        symlinkSync(path.join("..data", file), path.join(dir, file));
      } catch {
        // already linked
      }
    }
  };
  write(files);
  return { dir, update: write };
}

/** Plain files in <root>/<name>/ (the External Secrets shape without symlinks). */
function plainSecret(root: string, name: string, files: Record<string, string>) {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, value] of Object.entries(files)) writeFileSync(path.join(dir, file), value);
  return dir;
}

const nextChange = (registry: WatchedGitHubAppRegistry, name: string) =>
  new Promise<GitHubApp>((resolve) => registry.onChange((app) => app.name === name && resolve(app)));

describe("GitHub Apps from environment variables", () => {
  it("reads several named apps, PKCS#1 and PKCS#8, one-line PEMs with literal \\n, and client ids as issuers", () => {
    const rex = rsaPem("pkcs1");
    const clippy = rsaPem("pkcs8");
    const qa = rsaPem();
    const registry = loadGitHubApps({
      env: {
        GITHUB_APP_REX_ID: "101",
        GITHUB_APP_REX_PRIVATE_KEY: rex.replace(/\n/g, "\\n"),
        GITHUB_APP_REX_WEBHOOK_SECRET: "rex-hook-secret",
        GITHUB_APP_REX_SLUG: "rex-bot",
        GITHUB_APP_REX_CLIENT_ID: "Iv23rexclientid00001",
        GITHUB_APP_REX_CLIENT_SECRET: "rex-client-secret",
        GITHUB_APP_CLIPPY_ID: "202",
        GITHUB_APP_CLIPPY_PRIVATE_KEY: clippy,
        GITHUB_APP_TRIAGE_BOT_CLIENT_ID: "Iv23triageclient0001",
        GITHUB_APP_TRIAGE_BOT_PRIVATE_KEY: qa,
      },
    });
    expect(registry.names()).toEqual(["clippy", "rex", "triage-bot"]);
    const app = registry.get("rex")!;
    expect(app).toMatchObject({
      name: "rex",
      appId: "101",
      slug: "rex-bot",
      webhookSecret: "rex-hook-secret",
      clientId: "Iv23rexclientid00001",
      clientSecret: "rex-client-secret",
    });
    expect(app.privateKey!.type).toBe("private");
    expect(app.privateKey!.asymmetricKeyType).toBe("rsa");
    expect(samePublicKey(app.privateKey!, rex)).toBe(true);
    expect(samePublicKey(registry.get("clippy")!.privateKey!, clippy)).toBe(true);
    // Without a numeric id the client id is the JWT issuer.
    expect(registry.get("triage-bot")).toMatchObject({ appId: "Iv23triageclient0001", clientId: "Iv23triageclient0001" });
    expect(registry.byAppId("202")?.name).toBe("clippy");
    expect(registry.byAppId("999")).toBeUndefined();
    // The PEM is not kept as a string anywhere on the app.
    expect(JSON.stringify(app)).not.toContain("PRIVATE KEY");
    registry.close();
  });

  it("keeps the unnamed GITHUB_APP_* as one app, 'default' or GITHUB_APP_NAME; GITHUB_APP_CLIENT_ID is not an app named client", () => {
    const pem = rsaPem();
    const legacy = {
      GITHUB_APP_ID: "303",
      GITHUB_APP_SLUG: "keyplane",
      GITHUB_APP_PRIVATE_KEY: pem,
      GITHUB_APP_WEBHOOK_SECRET: "legacy-hook",
      GITHUB_APP_CLIENT_ID: "Iv23legacyclient0001",
      GITHUB_APP_CLIENT_SECRET: "legacy-client-secret",
    };
    const registry = loadGitHubApps({ env: legacy });
    expect(registry.names()).toEqual(["default"]);
    expect(registry.get("default")).toMatchObject({
      appId: "303",
      slug: "keyplane",
      webhookSecret: "legacy-hook",
      clientId: "Iv23legacyclient0001",
      clientSecret: "legacy-client-secret",
    });
    expect(registry.get("client")).toBeUndefined();

    const named = loadGitHubApps({ env: { ...legacy, GITHUB_APP_NAME: "rex", GITHUB_APP_QA_ID: "404", GITHUB_APP_QA_PRIVATE_KEY: rsaPem() } });
    expect(named.names()).toEqual(["qa", "rex"]);
    expect(named.get("rex")!.appId).toBe("303");

    // An OAuth client or a webhook secret alone configured no app before named apps, and still does not.
    const { logger, lines } = memoryLogger();
    expect(
      loadGitHubApps({ env: { GITHUB_APP_CLIENT_ID: "Iv23x", GITHUB_APP_CLIENT_SECRET: "s", GITHUB_APP_WEBHOOK_SECRET: "w" } }, { logger }).names(),
    ).toEqual([]);
    expect(lines.join("")).toContain("configure no app");
    expect(lines.join("")).not.toContain('"s"');
  });

  it("fails at start naming the app and the problem, never the key", () => {
    const missing = configError(() => loadGitHubApps({ env: { GITHUB_APP_REX_ID: "1" } }));
    expect(missing.app).toBe("rex");
    expect(missing.message).toBe("invalid configuration: GitHub App rex: GITHUB_APP_REX_PRIVATE_KEY is missing");

    expect(configError(() => loadGitHubApps({ env: { GITHUB_APP_QA_PRIVATE_KEY: rsaPem() } })).message).toMatch(
      /GitHub App qa: GITHUB_APP_QA_ID \(or GITHUB_APP_QA_CLIENT_ID\) is missing/,
    );

    const good = rsaPem();
    const cases: Array<[string, string, RegExp]> = [
      ["first line only", "-----BEGIN RSA PRIVATE KEY-----", /truncated/],
      ["cut short", good.slice(0, 900), /truncated/],
      ["damaged body", good.replace(/\n[A-Za-z0-9+/]{20}/, "\n!!!!!!!!!!!!!!!!!!!!"), /not a valid PEM private key/],
      ["not PEM", "just some text", /not a PEM private key/],
      [
        "EC",
        remembered(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }).toString()),
        /not an RSA key \(EC\)/,
      ],
      [
        "Ed25519 PKCS#8",
        remembered(generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString()),
        /not an RSA key \(ed25519\)/,
      ],
      ["public key", remembered(createPublicKey(createPrivateKey(good)).export({ type: "spki", format: "pem" }).toString()), /public key or certificate/],
      [
        "encrypted",
        remembered(
          generateKeyPairSync("rsa", { modulusLength: 2048 })
            .privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pass" })
            .toString(),
        ),
        /encrypted/,
      ],
      ["1024-bit RSA", rsaPem("pkcs1", 1024), /RSA key of 1024 bits/],
    ];
    for (const [label, pem, problem] of cases) {
      const error = configError(() => loadGitHubApps({ env: { GITHUB_APP_CLIPPY_ID: "2", GITHUB_APP_CLIPPY_PRIVATE_KEY: pem } }));
      expect(error.app, label).toBe("clippy");
      expect(error.message, label).toMatch(/^invalid configuration: GitHub App clippy: GITHUB_APP_CLIPPY_PRIVATE_KEY /);
      expect(error.message, label).toMatch(problem);
    }

    expect(configError(() => loadGitHubApps({ env: { GITHUB_APP_REX_ID: "12; drop", GITHUB_APP_REX_PRIVATE_KEY: good } })).message).toMatch(
      /GITHUB_APP_REX_ID is not a GitHub App id/,
    );
    expect(
      configError(() => loadGitHubApps({ env: { GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_PRIVATE_KEY: good, GITHUB_APP_REX_CLIENT_SECRET: "x" } })).message,
    ).toMatch(/CLIENT_SECRET is set without GITHUB_APP_REX_CLIENT_ID/);
    expect(
      configError(() =>
        loadGitHubApps({
          env: { GITHUB_APP_ID: "1", GITHUB_APP_PRIVATE_KEY: good, GITHUB_APP_NAME: "rex", GITHUB_APP_REX_ID: "2", GITHUB_APP_REX_PRIVATE_KEY: good },
        }),
      ).message,
    ).toMatch(/GitHub App rex: configured both/);
  });

  it("is what config.githubApps carries: only the GITHUB_APP_* variables, the directory and the poll interval", () => {
    const config = loadConfig({
      GITHUB_APP_REX_ID: "1",
      GITHUB_APP_REX_PRIVATE_KEY: "pem",
      GITHUB_APPS_DIR: "/secrets/github-apps",
      PATH: "/usr/bin",
      GITHUB_API_URL: "https://ghe.example/api/v3/",
    });
    expect(config.githubApps).toEqual({
      env: { GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_PRIVATE_KEY: "pem" },
      dir: "/secrets/github-apps",
      pollSeconds: 5,
      apiUrl: "https://ghe.example/api/v3",
      webUrl: "https://github.com",
      timeoutMs: 10_000,
    });
    expect(loadConfig({ GITHUB_APPS_POLL_SECONDS: "0.5" }).githubApps.pollSeconds).toBe(0.5);
    expect(() => loadConfig({ GITHUB_APPS_POLL_SECONDS: "never" })).toThrow(/GITHUB_APPS_POLL_SECONDS/);
    expect(() => loadConfig({ GITHUB_APP_NAME: "Rex!" })).toThrow(/GITHUB_APP_NAME/);
  });
});

function remembered(pem: string): string {
  remember(pem);
  return pem;
}

describe("GitHub Apps from a directory of mounted secrets", () => {
  it("reads every app directory (Kubernetes ..data layout or plain files), skipping Kubernetes' own entries", () => {
    const root = freshDir();
    const rex = rsaPem();
    kubernetesSecret(root, "rex", { appId: "101\n", privateKey: rex, webhookSecret: "rex-hook\n", slug: "rex-bot\n" });
    const clippy = rsaPem("pkcs8");
    plainSecret(root, "clippy", {
      appId: "202",
      privateKey: clippy.replace(/\n/g, "\\n"),
      webhookSecret: "clippy-hook",
      clientId: "Iv23clippy",
      clientSecret: "clippy-secret",
    });
    mkdirSync(path.join(root, "..data"));
    mkdirSync(path.join(root, "Not_An_App"));
    writeFileSync(path.join(root, "README"), "not a directory");

    const { logger, lines } = memoryLogger();
    const registry = loadGitHubApps({ dir: root }, { logger, watch: false });
    expect(registry.names()).toEqual(["clippy", "rex"]);
    expect(registry.get("rex")).toMatchObject({ appId: "101", webhookSecret: "rex-hook", slug: "rex-bot" });
    expect(registry.get("clippy")).toMatchObject({ appId: "202", clientId: "Iv23clippy", clientSecret: "clippy-secret", slug: undefined });
    expect(samePublicKey(registry.get("rex")!.privateKey!, rex)).toBe(true);
    expect(lines.join("")).toContain("Not_An_App is not an app name");
    registry.close();
  });

  it("fails at start naming the app and the missing or broken file", () => {
    const root = freshDir();
    plainSecret(root, "qa", { appId: "1", webhookSecret: "w" });
    expect(configError(() => loadGitHubApps({ dir: root }, { watch: false })).message).toBe(
      `invalid configuration: GitHub App qa: ${path.join(root, "qa", "privateKey")} is missing`,
    );

    const other = freshDir();
    plainSecret(other, "triage", { appId: "1", privateKey: rsaPem() });
    expect(configError(() => loadGitHubApps({ dir: other }, { watch: false })).message).toMatch(/GitHub App triage: .*triage\/webhookSecret is missing/);

    const broken = freshDir();
    const pem = rsaPem();
    plainSecret(broken, "security", { appId: "1", webhookSecret: "w", privateKey: pem.slice(0, pem.length - 40) });
    const error = configError(() => loadGitHubApps({ dir: broken }, { watch: false }));
    expect(error.message).toMatch(/GitHub App security: .*security\/privateKey is (truncated|not a valid PEM private key)/);

    expect(configError(() => loadGitHubApps({ dir: path.join(tmp, "nowhere") })).message).toMatch(/GITHUB_APPS_DIR .*nowhere cannot be read \(ENOENT\)/);

    const both = freshDir();
    plainSecret(both, "rex", { appId: "1", webhookSecret: "w", privateKey: rsaPem() });
    expect(
      configError(() => loadGitHubApps({ dir: both, env: { GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_PRIVATE_KEY: rsaPem() } }, { watch: false })).message,
    ).toMatch(/GitHub App rex: configured both/);
  });

  it("picks up a Kubernetes ..data swap by polling; a malformed rotation keeps the previous key and logs the app and the problem only", async () => {
    const root = freshDir();
    const first = rsaPem();
    const secret = kubernetesSecret(root, "rex", { appId: "101", privateKey: first, webhookSecret: "hook-1" });
    plainSecret(root, "qa", { appId: "202", privateKey: rsaPem(), webhookSecret: "qa-hook" });
    const { logger, lines } = memoryLogger();
    const registry = loadGitHubApps({ dir: root, pollSeconds: 0.05 }, { logger });
    try {
      const qaBefore = registry.get("qa");

      const second = rsaPem();
      let changed = nextChange(registry, "rex");
      secret.update({ appId: "101", privateKey: second, webhookSecret: "hook-2" });
      const rotated = await changed;
      expect(samePublicKey(rotated.privateKey!, second)).toBe(true);
      expect(registry.get("rex")).toBe(rotated);
      expect(registry.get("rex")!.webhookSecret).toBe("hook-2");
      expect(registry.get("qa")).toBe(qaBefore); // untouched apps are not rebuilt

      // A rotation to something that is not an RSA key: logged once, the previous key stays.
      const ec = remembered(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString());
      secret.update({ appId: "101", privateKey: ec, webhookSecret: "hook-3" });
      await waitFor("a warning that the changed files are unusable", () => lines.some((l) => l.includes("changed files are unusable")));
      await registry.check();
      await registry.check();
      expect(registry.get("rex")).toBe(rotated);
      const errors = lines.filter((l) => l.includes("changed files are unusable"));
      expect(errors).toHaveLength(1);
      const logged = JSON.parse(errors[0]!);
      expect(logged).toMatchObject({ level: "error", app: "rex", problem: expect.stringMatching(/privateKey is not an RSA key/) });

      // A damaged key likewise; then a good one is taken.
      const third = rsaPem();
      secret.update({ appId: "101", privateKey: third.replace(/\n[A-Za-z0-9+/]{30}/, "\n******************************"), webhookSecret: "hook-4" });
      await waitFor("a second warning that the changed files are unusable", () => lines.filter((l) => l.includes("changed files are unusable")).length === 2);
      expect(registry.get("rex")).toBe(rotated);
      changed = nextChange(registry, "rex");
      secret.update({ appId: "101", privateKey: third, webhookSecret: "hook-5" });
      expect(samePublicKey((await changed).privateKey!, third)).toBe(true);

      expectNoKeyMaterial(lines.join("\n"));
    } finally {
      registry.close();
    }
  });

  it("re-reads plain files rewritten in place when asked (check), the way the poll does", async () => {
    const root = freshDir();
    const dir = plainSecret(root, "clippy", { appId: "7", privateKey: rsaPem(), webhookSecret: "a" });
    const registry = loadGitHubApps({ dir: root }, { watch: false });
    const before = registry.get("clippy");
    await registry.check();
    expect(registry.get("clippy")).toBe(before); // nothing changed, nothing rebuilt
    const next = rsaPem("pkcs8");
    writeFileSync(path.join(dir, "privateKey"), next);
    writeFileSync(path.join(dir, "appId"), "8\n");
    await registry.check();
    expect(registry.get("clippy")!.appId).toBe("8");
    expect(samePublicKey(registry.get("clippy")!.privateKey!, next)).toBe(true);
    expect(registry.byAppId("7")).toBeUndefined();
    expect(registry.byAppId("8")?.name).toBe("clippy");
    registry.close();
  });
});

describe("a rotated key at the GitHub fake", () => {
  let fake: FakeGitHub;
  beforeAll(async () => {
    fake = await startFakeGitHub();
  });
  afterAll(() => fake.close());

  it("is used by the next token request, which succeeds at once and is signed by the new key", async () => {
    const fakeApp = await fake.createApp({ slug: "rotating-rex" });
    remember(fakeApp.privateKeyPem);
    const installation = fake.addInstallation({
      appId: fakeApp.appId,
      account: { login: "rotation-org", type: "Organization" },
      repositories: ["api"],
      permissions: { contents: "read" },
    });
    // Mounted with a key GitHub does not know yet; the operator then rotates in the app's real key.
    const root = freshDir();
    const secret = kubernetesSecret(root, "rex", { appId: String(fakeApp.appId), privateKey: rsaPem(), webhookSecret: "hook" });
    const jwts: string[] = [];
    const recordingFetch: typeof fetch = (input, init) => {
      const auth = new Headers(init?.headers).get("authorization");
      if (auth?.toLowerCase().startsWith("bearer ")) jwts.push(auth.slice(7));
      return fetch(input, init);
    };
    const apps = createGitHubApps(
      { env: {}, dir: root, pollSeconds: 0.05, apiUrl: fake.url, webUrl: fake.url, timeoutMs: 5_000 },
      { metrics: createMetrics(), fetch: recordingFetch, sleep: async () => undefined },
    );
    try {
      const oldKey = apps.registry.get("rex")!.privateKey!;
      const changed = nextChange(apps.registry, "rex");
      secret.update({ appId: String(fakeApp.appId), privateKey: fakeApp.privateKeyPem, webhookSecret: "hook" });
      await changed;

      const before = fake.requests.length;
      const minted = await apps.client("rex")!.mint({ installationId: installation.id });
      expect(fake.isInstallationTokenValid(minted.token)).toBe(true);
      // One request, answered 201: no failed attempt on the way.
      expect(fake.requests.slice(before)).toEqual([{ method: "POST", path: `/app/installations/${installation.id}/access_tokens`, status: 201 }]);
      const jwt = jwts.at(-1)!;
      await expect(compactVerify(jwt, createPublicKey(fakeApp.privateKeyPem))).resolves.toBeTruthy();
      await expect(compactVerify(jwt, createPublicKey(oldKey))).rejects.toThrow();
      const claims = decodeJwt(jwt);
      expect(claims.iss).toBe(String(fakeApp.appId));
      expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
      expect(Math.floor(Date.now() / 1000) - claims.iat!).toBeGreaterThanOrEqual(59);

      // The install provider of the same app uses the rotated key too.
      const info = await apps.provider("rex")!.installationInfo({ externalId: String(installation.id) });
      expect(info.account.login).toBe("rotation-org");
      expect(apps.defaultApp).toBe("rex");
    } finally {
      apps.close();
    }
  });
});

describe("createGitHubApps", () => {
  it("builds a client and an install provider per app and picks the default app", () => {
    const base = { dir: undefined, pollSeconds: 5, apiUrl: "https://api.github.com", webUrl: "https://github.com", timeoutMs: 1_000 };
    const two = createGitHubApps({
      ...base,
      env: {
        GITHUB_APP_REX_ID: "1",
        GITHUB_APP_REX_PRIVATE_KEY: rsaPem(),
        GITHUB_APP_QA_ID: "2",
        GITHUB_APP_QA_PRIVATE_KEY: rsaPem(),
        GITHUB_APP_QA_SLUG: "qa-bot",
      },
    });
    expect(two.registry.names()).toEqual(["qa", "rex"]);
    expect(two.defaultApp).toBe("qa"); // first by name
    expect(two.client("rex")!.app).toBe("rex");
    expect(two.client("nope")).toBeUndefined();
    expect(two.provider("qa")!.authorizationUrl({ state: "s", redirectUri: "https://keyplane.example/cb" })).toBe(
      "https://github.com/apps/qa-bot/installations/new?state=s",
    );
    // No slug, no install page: a clear refusal rather than a broken URL.
    expect(() => two.provider("rex")!.authorizationUrl({ state: "s", redirectUri: "https://keyplane.example/cb" })).toThrow(/app_slug_not_configured/);
    two.close();

    const withDefault = createGitHubApps({
      ...base,
      env: { GITHUB_APP_ID: "3", GITHUB_APP_PRIVATE_KEY: rsaPem(), GITHUB_APP_SLUG: "keyplane", GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_PRIVATE_KEY: rsaPem() },
    });
    expect(withDefault.defaultApp).toBe("default");
    withDefault.close();

    expect(createGitHubApps({ ...base, env: {} }).defaultApp).toBeUndefined();
    expect(() => createGitHubApps({ ...base, env: { GITHUB_APP_REX_ID: "1" } })).toThrow(GitHubAppConfigError);
  });
});
