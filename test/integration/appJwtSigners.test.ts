import { createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubAppsConfig } from "../../src/config.ts";
import { DomainError } from "../../src/errors.ts";
import { GitHubAppConfigError, loadGitHubApps } from "../../src/github/appRegistry.ts";
import { createGitHubApps, type GitHubAppsDeps, type GitHubAppsHandle } from "../../src/github/githubApps.ts";
import { keyFingerprint } from "../../src/github/signers/jwtSigner.ts";
import { createLogger, type Logger } from "../../src/logger.ts";
import { createMetrics } from "../../src/metrics.ts";
import { onlyApp } from "../../src/tokenWriter/run.ts";
import { type FakeKms, startFakeKms } from "../fakes/awsKms.ts";
import { type FakeGitHub, type FakeGitHubApp, type GitHubInstallation, startFakeGitHub } from "../fakes/github.ts";
import { SKIPPED_WITHOUT_SOFTHSM, SOFTHSM_MODULE, softHsmAvailable, softHsmToken, type SoftHsmToken } from "../testkit/softHsm.ts";
import { keepCommandLog, scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret } from "../testkit/secrets.ts";

// GitHub App JWTs signed by a key Keyplane never holds: on a PKCS#11 token (SoftHSM2) and in AWS KMS
// (a local fake of its JSON API that checks SigV4). What a user sees: a real installation token minted
// at the GitHub fake (which verifies each JWT against the app's public key), the key's fingerprint in
// the start-up log, and, when something is wrong, an error at start naming the app and the problem,
// never a PIN, a key or a secret access key.

const softhsm = softHsmAvailable;
if (!softhsm) console.warn(`PKCS#11 signer tests skipped: ${SKIPPED_WITHOUT_SOFTHSM}`);

const scratch = scratchDirectory("keyplane-signers-");

/** Registers the body of a PEM (the lines between the armour) with the log scan. */
function registerPem(pem: string): void {
  for (const line of pem.split("\n")) if (line && !line.startsWith("-----")) registerSecret(line);
}

/** A logger whose lines the test reads; they are also kept for the suite's secret scan. */
function capturedLogger(name: string): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const logger = createLogger({
    level: "debug",
    destination: {
      write: (s: string) => {
        lines.push(s);
        keepCommandLog("appJwtSigners", name, s);
      },
    },
  });
  return { logger, text: () => lines.join("") };
}

/** Every way an error shows itself, for checks that no secret is in it. */
const shown = (error: Error) => `${error.message}\n${error.stack ?? ""}\n${JSON.stringify({ ...error })}`;

let github: FakeGitHub;
let rex: FakeGitHubApp;
let installation: GitHubInstallation;

beforeAll(async () => {
  github = await startFakeGitHub();
  rex = await github.createApp({ slug: `rex-${randomBytes(3).toString("hex")}` });
  registerPem(rex.privateKeyPem);
  installation = github.addInstallation({
    appId: rex.appId,
    account: { login: `acme-${randomBytes(3).toString("hex")}`, type: "Organization" },
    repositories: ["api", "web"],
    permissions: { contents: "write", metadata: "read" },
  });
});
afterAll(() => github?.close());

function apps(env: Record<string, string>, deps: GitHubAppsDeps = {}): GitHubAppsHandle {
  const config: GitHubAppsConfig = { env, dir: undefined, pollSeconds: 5, apiUrl: github.url, webUrl: github.url, timeoutMs: 5_000 };
  return createGitHubApps(config, { metrics: createMetrics(), sleep: async () => undefined, retry: { attempts: 1 }, ...deps });
}

/** The error `ready` rejects with. */
async function startFailure(handle: GitHubAppsHandle): Promise<GitHubAppConfigError> {
  try {
    await handle.ready;
  } catch (error) {
    expect(error).toBeInstanceOf(GitHubAppConfigError);
    return error as GitHubAppConfigError;
  } finally {
    await handle.close();
  }
  throw new Error("expected the signer check to fail, it passed");
}

// ------------------------------------------------------------------------------------------------

describe.skipIf(!softhsm)("pkcs11 signer (SoftHSM2)", () => {
  let token: SoftHsmToken;
  let pin: string;
  let tokenLabel: string;
  let env: Record<string, string>;
  let previousConf: string | undefined;

  beforeAll(() => {
    // A token of this suite's own, in a directory of its own (SoftHSM reads SOFTHSM2_CONF at C_Initialize,
    // in this process: the signer runs here).
    token = softHsmToken(scratch.fresh());
    ({ pin, label: tokenLabel } = token);
    previousConf = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = token.conf;
    token.importKey(rex.privateKeyPem, "rex");
    env = { GITHUB_APP_REX_ID: String(rex.appId), ...token.appEnv("rex", "rex") };
  });

  afterAll(() => {
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
  });

  it("mints a real installation token with a key that stays on the token, and logs its fingerprint at start", async () => {
    const { logger, text } = capturedLogger("pkcs11");
    const handle = apps(env, { logger });
    try {
      await handle.ready;
      expect(handle.registry.get("rex")).toMatchObject({ name: "rex", signer: { kind: "pkcs11" } });
      expect(handle.registry.get("rex")!.privateKey).toBeUndefined();
      const minted = await handle.client("rex")!.mint({ installationId: installation.id });
      registerSecret(minted.token);
      expect(github.isInstallationTokenValid(minted.token)).toBe(true);
      const ready = text()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === `GitHub App rex: pkcs11 token "${tokenLabel}" key label "rex" is ready`);
      expect(ready).toMatchObject({ app: "rex", signer: "pkcs11", keyFingerprint: keyFingerprint(createPrivateKey(rex.privateKeyPem)), bits: 2048 });
      expect(text()).not.toContain(pin);
    } finally {
      await handle.close();
    }
  });

  it("serializes concurrent signatures on its one session, and opens a new session when the token dropped it", async () => {
    const handle = apps({
      ...env,
      GITHUB_APP_REX_PKCS11_PIN_FILE: "",
      GITHUB_APP_REX_PKCS11_PIN: pin,
      GITHUB_APP_REX_PKCS11_KEY_LABEL: "",
      GITHUB_APP_REX_PKCS11_KEY_ID: "01",
    });
    try {
      await handle.ready;
      const client = handle.client("rex")!;
      const tokens = await Promise.all(Array.from({ length: 8 }, () => client.mint({ installationId: installation.id })));
      for (const { token } of tokens) {
        registerSecret(token);
        expect(github.isInstallationTokenValid(token)).toBe(true);
      }
      // Another user of the same library in this process closes every session on the slot: the
      // signer's next C_SignInit gets CKR_SESSION_HANDLE_INVALID, and it logs in on a new session.
      const pkcs11js = (await import("pkcs11js")) as unknown as { default: typeof import("pkcs11js") };
      const other = new pkcs11js.default.PKCS11();
      other.load(SOFTHSM_MODULE);
      try {
        other.C_Initialize();
      } catch {
        // Already initialized by the signer: the same library state, which is the point.
      }
      const slot = other.C_GetSlotList(true).find((s) => other.C_GetTokenInfo(s).label.trimEnd() === tokenLabel)!;
      other.C_CloseAllSessions(slot);
      const after = await client.mint({ installationId: installation.id });
      registerSecret(after.token);
      expect(github.isInstallationTokenValid(after.token)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it("refuses to start on a wrong PIN, a key or token that is not there, naming the app and never the PIN", async () => {
    const wrongPin = `pin-${randomBytes(8).toString("hex")}`;
    registerSecret(wrongPin);
    const { logger, text } = capturedLogger("pkcs11-failures");
    const badPin = await startFailure(apps({ ...env, GITHUB_APP_REX_PKCS11_PIN_FILE: "", GITHUB_APP_REX_PKCS11_PIN: wrongPin }, { logger }));
    expect(badPin.message).toBe(
      `invalid configuration: GitHub App rex: pkcs11 token "${tokenLabel}" key label "rex": the token refused the PIN (CKR_PIN_INCORRECT)`,
    );
    expect(shown(badPin)).not.toContain(wrongPin);
    expect(shown(badPin)).not.toContain(pin);
    expect(text()).not.toContain(wrongPin);

    const noKey = await startFailure(apps({ ...env, GITHUB_APP_REX_PKCS11_KEY_LABEL: "clippy" }));
    expect(noKey.message).toBe(`invalid configuration: GitHub App rex: pkcs11 token "${tokenLabel}" key label "clippy": no such private key on the token`);

    const noToken = await startFailure(apps({ ...env, GITHUB_APP_REX_PKCS11_TOKEN_LABEL: "missing" }));
    expect(noToken.message).toBe('invalid configuration: GitHub App rex: pkcs11 token "missing" key label "rex": no token labelled "missing" is present');

    const noModule = await startFailure(apps({ ...env, GITHUB_APP_REX_PKCS11_MODULE: "/nonexistent/libpkcs11.so" }));
    expect(noModule.message).toMatch(/^invalid configuration: GitHub App rex: the PKCS#11 library \/nonexistent\/libpkcs11\.so could not be loaded/);
  });
});

// ------------------------------------------------------------------------------------------------

describe("aws-kms signer (a local KMS that checks SigV4)", () => {
  let kms: FakeKms;
  let key: { keyId: string; arn: string; alias?: string };
  let credentials: { accessKeyId: string; secretAccessKey: string };

  beforeAll(async () => {
    kms = await startFakeKms({ region: "eu-west-1" });
    key = kms.addKey({ privateKey: rex.privateKeyPem, alias: "github-app-rex" });
    credentials = kms.addCredentials({ actions: ["kms:Sign", "kms:GetPublicKey"], keys: [key.arn] });
    registerSecret(credentials.secretAccessKey);
  });
  afterAll(() => kms?.close());

  const envFor = (keyId: string, extra: Record<string, string> = {}) => ({
    GITHUB_APP_REX_ID: String(rex.appId),
    GITHUB_APP_REX_SIGNER: "aws-kms",
    GITHUB_APP_REX_KMS_KEY_ID: keyId,
    GITHUB_APP_REX_KMS_ENDPOINT: kms.url,
    ...extra,
  });
  const withCredentials = (c: { accessKeyId: string; secretAccessKey: string }, logger?: Logger): GitHubAppsDeps => ({
    logger,
    signers: { awsKms: { client: { credentials: c, maxAttempts: 1 } } },
  });

  it("mints a real installation token: GetPublicKey at start (fingerprint logged), one kms:Sign per JWT", async () => {
    const { logger, text } = capturedLogger("kms");
    // By ARN: the region comes from it.
    const handle = apps(envFor(key.arn), withCredentials(credentials, logger));
    try {
      await handle.ready;
      const from = kms.calls.length;
      const minted = await handle.client("rex")!.mint({ installationId: installation.id });
      registerSecret(minted.token);
      expect(github.isInstallationTokenValid(minted.token)).toBe(true);
      expect(kms.calls.slice(from)).toEqual([{ action: "Sign", status: 200 }]);
      const ready = text()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => typeof l.msg === "string" && l.msg.endsWith("is ready"));
      expect(ready).toMatchObject({
        app: "rex",
        signer: "aws-kms",
        keyFingerprint: keyFingerprint(createPrivateKey(rex.privateKeyPem)),
        msg: `GitHub App rex: aws-kms key ${key.arn} in eu-west-1 is ready`,
      });
      expect(text()).not.toContain(credentials.secretAccessKey);
    } finally {
      await handle.close();
    }
    // By alias, with the region given.
    const byAlias = apps(envFor("alias/github-app-rex", { GITHUB_APP_REX_KMS_REGION: "eu-west-1" }), withCredentials(credentials));
    try {
      await byAlias.ready;
      const minted = await byAlias.client("rex")!.mint({ installationId: installation.id });
      registerSecret(minted.token);
      expect(github.isInstallationTokenValid(minted.token)).toBe(true);
    } finally {
      await byAlias.close();
    }
  });

  it("refuses to start when the key is not found, naming the app, the key and KMS's answer", async () => {
    const missing = "arn:aws:kms:eu-west-1:111122223333:key/0b0b0b0b-1111-2222-3333-444455556666";
    const error = await startFailure(apps(envFor(missing), withCredentials(credentials)));
    expect(error.message).toBe(
      `invalid configuration: GitHub App rex: aws-kms key ${missing} in eu-west-1: kms:GetPublicKey: KMS found no such key (NotFoundException: Key '${missing}' does not exist)`,
    );
    expect(shown(error)).not.toContain(credentials.secretAccessKey);
  });

  it("refuses to start when KMS refuses the request's AWS signature (a wrong secret access key), without the secret", async () => {
    const wrong = { accessKeyId: credentials.accessKeyId, secretAccessKey: randomBytes(30).toString("base64") };
    registerSecret(wrong.secretAccessKey);
    const { logger, text } = capturedLogger("kms-signature");
    const error = await startFailure(apps(envFor(key.arn), withCredentials(wrong, logger)));
    expect(error.message).toMatch(
      new RegExp(
        `^invalid configuration: GitHub App rex: aws-kms key ${key.arn} in eu-west-1: kms:GetPublicKey: KMS refused the request's AWS signature \\(wrong secret access key or clock\\?\\) \\(InvalidSignatureException: The request signature we calculated does not match`,
      ),
    );
    for (const secret of [wrong.secretAccessKey, credentials.secretAccessKey]) {
      expect(shown(error)).not.toContain(secret);
      expect(text()).not.toContain(secret);
    }
    expect(kms.calls.at(-1)).toEqual({ action: "GetPublicKey", status: 400, error: "InvalidSignatureException" });
  });

  it("refuses to start when the role may read the public key but not sign, or the key cannot sign RS256 or is too small", async () => {
    const readOnly = kms.addCredentials({ actions: ["kms:GetPublicKey"], keys: [key.arn] });
    registerSecret(readOnly.secretAccessKey);
    const denied = await startFailure(apps(envFor(key.arn), withCredentials(readOnly)));
    expect(denied.message).toMatch(
      /^invalid configuration: GitHub App rex: aws-kms key \S+ in eu-west-1: kms:Sign: KMS denied the request .*AccessDeniedException: User: .* is not authorized to perform: kms:Sign on resource/,
    );

    const encryption = kms.addKey({ privateKey: rex.privateKeyPem, keyUsage: "ENCRYPT_DECRYPT" });
    const wrongUsage = await startFailure(apps(envFor(encryption.arn), withCredentials(kms.addCredentials())));
    expect(wrongUsage.message).toBe(
      `invalid configuration: GitHub App rex: aws-kms key ${encryption.arn} in eu-west-1: the key's usage is ENCRYPT_DECRYPT, not SIGN_VERIFY`,
    );

    const small = kms.addKey({ privateKey: generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey });
    const tooSmall = await startFailure(apps(envFor(small.arn), withCredentials(kms.addCredentials())));
    expect(tooSmall.message).toBe(
      `invalid configuration: GitHub App rex: aws-kms key ${small.arn} in eu-west-1 is an RSA key of 1024 bits; RS256 needs 2048 or more`,
    );
  });

  it("a mounted app's changed key id is used once the new key passed the start check; a key that fails it is refused and the old one stays", async () => {
    const dir = scratch.fresh();
    const appDir = path.join(dir, "rex");
    mkdirSync(appDir);
    const files = { appId: String(rex.appId), webhookSecret: "hook", signer: "aws-kms", kmsKeyId: key.arn, kmsEndpoint: kms.url };
    for (const [file, value] of Object.entries(files)) writeFileSync(path.join(appDir, file), `${value}\n`);
    const { logger, text } = capturedLogger("kms-rotation");
    const registry = loadGitHubApps({ dir }, { logger, watch: false, signers: { awsKms: { client: { credentials, maxAttempts: 1 } } } });
    try {
      const first = registry.get("rex")!.signer!;
      expect(first.where).toBe(`aws-kms key ${key.arn} in eu-west-1`);
      const missing = "arn:aws:kms:eu-west-1:111122223333:key/0c0c0c0c-1111-2222-3333-444455556666";
      writeFileSync(path.join(appDir, "kmsKeyId"), `${missing}\n`);
      await registry.check();
      expect(registry.get("rex")!.signer).toBe(first);
      expect(text()).toContain(`changed files are unusable (aws-kms key ${missing} in eu-west-1: kms:GetPublicKey: KMS found no such key`);

      kms.addKey({ privateKey: rex.privateKeyPem, alias: "github-app-rex-next" });
      writeFileSync(path.join(appDir, "kmsKeyId"), "alias/github-app-rex-next\n");
      writeFileSync(path.join(appDir, "kmsRegion"), "eu-west-1\n");
      await registry.check();
      // The credentials above cover the first key only: the new one fails its check, the old one stays.
      expect(registry.get("rex")!.signer).toBe(first);
      expect(text()).toMatch(/changed files are unusable \(aws-kms key alias\/github-app-rex-next in eu-west-1: kms:GetPublicKey: KMS denied the request/);
    } finally {
      await registry.close();
    }
    // With a role that may use the new key, it is taken, and the fingerprint logged is the same key's.
    const allowedBoth = kms.addCredentials();
    registerSecret(allowedBoth.secretAccessKey);
    writeFileSync(path.join(appDir, "kmsKeyId"), `${key.arn}\n`);
    const again = loadGitHubApps({ dir }, { logger, watch: false, signers: { awsKms: { client: { credentials: allowedBoth, maxAttempts: 1 } } } });
    try {
      const before = again.get("rex")!.signer;
      writeFileSync(path.join(appDir, "kmsKeyId"), "alias/github-app-rex-next\n");
      await again.check();
      expect(again.get("rex")!.signer).not.toBe(before);
      expect(again.get("rex")!.signer!.where).toBe("aws-kms key alias/github-app-rex-next in eu-west-1");
      const changed = text()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === "GitHub App rex: files changed; the new values are in use");
      expect(changed).toMatchObject({ app: "rex", signer: "aws-kms", keyFingerprint: keyFingerprint(createPrivateKey(rex.privateKeyPem)) });
    } finally {
      await again.close();
    }
  });

  it("when KMS refuses to sign at token time, the request fails with Keyplane's error naming the app, never a secret", async () => {
    // Not waiting for the check at start (as a process that starts anyway would): each JWT asks KMS.
    const wrong = { accessKeyId: credentials.accessKeyId, secretAccessKey: randomBytes(30).toString("base64") };
    registerSecret(wrong.secretAccessKey);
    const handle = apps(envFor(key.arn), withCredentials(wrong));
    try {
      const failure = await handle
        .client("rex")!
        .mint({ installationId: installation.id })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(failure).toBeInstanceOf(DomainError);
      expect((failure as DomainError).code).toBe("PROVIDER_ERROR");
      expect((failure as Error).message).toMatch(
        /^GitHub App rex: the app JWT could not be signed: aws-kms key \S+ in eu-west-1: kms:Sign: KMS refused the request's AWS signature/,
      );
      expect((failure as DomainError).extensions).toMatchObject({ app: "rex", providerCode: "app_jwt_signing_failed" });
      expect(shown(failure as Error)).not.toContain(wrong.secretAccessKey);
    } finally {
      await handle.close();
    }
  });
});

// ------------------------------------------------------------------------------------------------

describe("signer configuration", () => {
  const pem = () => {
    const text = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    registerPem(text);
    return text;
  };
  const configError = (env: Record<string, string>): GitHubAppConfigError => {
    try {
      loadGitHubApps({ env }, { watch: false }).close();
    } catch (error) {
      expect(error).toBeInstanceOf(GitHubAppConfigError);
      return error as GitHubAppConfigError;
    }
    throw new Error("expected a configuration error");
  };
  const pkcs11 = {
    GITHUB_APP_REX_ID: "1",
    GITHUB_APP_REX_SIGNER: "pkcs11",
    GITHUB_APP_REX_PKCS11_MODULE: SOFTHSM_MODULE,
    GITHUB_APP_REX_PKCS11_TOKEN_LABEL: "ci",
    GITHUB_APP_REX_PKCS11_PIN: "not-logged-1234",
    GITHUB_APP_REX_PKCS11_KEY_LABEL: "rex",
  };

  it("refuses an unknown signer, a private key beside a pkcs11 or aws-kms signer, and missing or stray settings", () => {
    expect(configError({ GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_SIGNER: "vault" }).message).toBe(
      'invalid configuration: GitHub App rex: GITHUB_APP_REX_SIGNER is "vault": the signer is memory (the default), pkcs11 or aws-kms',
    );
    const key = pem();
    const both = configError({ ...pkcs11, GITHUB_APP_REX_PRIVATE_KEY: key });
    expect(both.message).toBe(
      "invalid configuration: GitHub App rex: GITHUB_APP_REX_PRIVATE_KEY is set but the signer is pkcs11: the key stays in the HSM; remove the private key",
    );
    expect(shown(both)).not.toContain(key.split("\n")[1]);
    expect(
      configError({ GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_SIGNER: "aws-kms", GITHUB_APP_REX_KMS_KEY_ID: "alias/rex", GITHUB_APP_REX_PRIVATE_KEY: key })
        .message,
    ).toBe(
      "invalid configuration: GitHub App rex: GITHUB_APP_REX_PRIVATE_KEY is set but the signer is aws-kms: the key stays in the KMS; remove the private key",
    );
    const { GITHUB_APP_REX_PKCS11_KEY_LABEL: _label, ...noLabel } = pkcs11;
    expect(configError(noLabel).message).toBe(
      "invalid configuration: GitHub App rex: GITHUB_APP_REX_PKCS11_KEY_LABEL (or GITHUB_APP_REX_PKCS11_KEY_ID) is missing: which key on the token",
    );
    const { GITHUB_APP_REX_PKCS11_PIN: thePin, ...noPin } = pkcs11;
    expect(configError(noPin).message).toBe(
      "invalid configuration: GitHub App rex: GITHUB_APP_REX_PKCS11_PIN (or GITHUB_APP_REX_PKCS11_PIN_FILE) is missing: the token's user PIN",
    );
    const unreadable = configError({ ...noPin, GITHUB_APP_REX_PKCS11_PIN_FILE: "/nonexistent/pin" });
    expect(unreadable.message).toBe("invalid configuration: GitHub App rex: GITHUB_APP_REX_PKCS11_PIN_FILE (/nonexistent/pin) cannot be read (ENOENT)");
    const relative = configError({ ...pkcs11, GITHUB_APP_REX_PKCS11_MODULE: "libsofthsm2.so" });
    expect(relative.message).toBe("invalid configuration: GitHub App rex: GITHUB_APP_REX_PKCS11_MODULE must be an absolute path");
    expect(shown(relative)).not.toContain(thePin);
    expect(configError({ GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_SIGNER: "aws-kms" }).message).toBe(
      "invalid configuration: GitHub App rex: GITHUB_APP_REX_KMS_KEY_ID is missing (the key's id, ARN or alias)",
    );
    expect(configError({ GITHUB_APP_REX_ID: "1", GITHUB_APP_REX_PRIVATE_KEY: key, GITHUB_APP_REX_KMS_KEY_ID: "alias/rex" }).message).toBe(
      "invalid configuration: GitHub App rex: GITHUB_APP_REX_KMS_KEY_ID is set but the signer is memory (set GITHUB_APP_REX_SIGNER)",
    );
    expect(
      configError({
        GITHUB_APP_REX_ID: "1",
        GITHUB_APP_REX_SIGNER: "aws-kms",
        GITHUB_APP_REX_KMS_KEY_ID: "alias/rex",
        GITHUB_APP_REX_KMS_ENDPOINT: "kms.local",
      }).message,
    ).toBe("invalid configuration: GitHub App rex: GITHUB_APP_REX_KMS_ENDPOINT is not an http(s) URL");
  });

  it("reads apps named kms or pkcs11 and the unnamed app's signer without ambiguity", () => {
    const registry = loadGitHubApps(
      {
        env: {
          // An app named kms, and one named pkcs11: their own settings after their names.
          GITHUB_APP_KMS_ID: "11",
          GITHUB_APP_KMS_SIGNER: "aws-kms",
          GITHUB_APP_KMS_KMS_KEY_ID: "alias/kms-app",
          GITHUB_APP_KMS_KMS_REGION: "eu-central-1",
          GITHUB_APP_PKCS11_ID: "12",
          GITHUB_APP_PKCS11_SIGNER: "pkcs11",
          GITHUB_APP_PKCS11_PKCS11_MODULE: SOFTHSM_MODULE,
          GITHUB_APP_PKCS11_PKCS11_SLOT: "3",
          GITHUB_APP_PKCS11_PKCS11_PIN: "not-logged-1234",
          GITHUB_APP_PKCS11_PKCS11_KEY_ID: "0x0A",
          // The unnamed app: GITHUB_APP_KMS_KEY_ID is its key, not an app "kms-key"'s id.
          GITHUB_APP_ID: "13",
          GITHUB_APP_SIGNER: "aws-kms",
          GITHUB_APP_KMS_KEY_ID: "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        },
      },
      { watch: false },
    );
    try {
      expect(registry.names()).toEqual(["default", "kms", "pkcs11"]);
      expect(registry.get("kms")).toMatchObject({ appId: "11", signer: { kind: "aws-kms", where: "aws-kms key alias/kms-app in eu-central-1" } });
      expect(registry.get("pkcs11")).toMatchObject({ appId: "12", signer: { kind: "pkcs11", where: "pkcs11 slot 3 key id 0a" } });
      expect(registry.get("default")).toMatchObject({
        appId: "13",
        signer: { kind: "aws-kms", where: "aws-kms key arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab in us-east-2" },
      });
    } finally {
      void registry.close();
    }
    // An app named kms-key cannot get its id from a variable: the error says why and what to do.
    expect(configError({ GITHUB_APP_KMS_KEY_SIGNER: "aws-kms", GITHUB_APP_KMS_KEY_KMS_KEY_ID: "alias/x" }).message).toMatch(
      /GitHub App kms-key: .*is missing \(an app named "kms-key" cannot be configured by variables: GITHUB_APP_KMS_KEY_ID reads as the unnamed app's KMS_KEY_ID; use GITHUB_APPS_DIR\)/,
    );
    // The token writer keeps the signer settings of the app it serves, and only those.
    expect(Object.keys(onlyApp({ ...pkcs11, GITHUB_APP_KMS_KMS_KEY_ID: "alias/x", GITHUB_APP_KMS_ID: "2" }, "rex")).sort()).toEqual(Object.keys(pkcs11).sort());
  });

  it("reads a signer from mounted files: GITHUB_APPS_DIR/<name>/signer, kmsKeyId, … without a privateKey file", () => {
    const dir = scratch.fresh();
    mkdirSync(path.join(dir, "clippy"));
    for (const [file, value] of Object.entries({
      appId: "21\n",
      webhookSecret: "hook\n",
      signer: "aws-kms\n",
      kmsKeyId: "alias/clippy\n",
      kmsRegion: "eu-west-1\n",
    }))
      writeFileSync(path.join(dir, "clippy", file), value);
    const registry = loadGitHubApps({ dir }, { watch: false });
    try {
      expect(registry.get("clippy")).toMatchObject({
        appId: "21",
        webhookSecret: "hook",
        signer: { kind: "aws-kms", where: "aws-kms key alias/clippy in eu-west-1" },
      });
    } finally {
      void registry.close();
    }
    writeFileSync(path.join(dir, "clippy", "signer"), "pkcs11\n");
    let error: unknown;
    try {
      loadGitHubApps({ dir }, { watch: false });
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toBe(`invalid configuration: GitHub App clippy: ${path.join(dir, "clippy", "kmsKeyId")} is set but the signer is pkcs11`);
  });
});
