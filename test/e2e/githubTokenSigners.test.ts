import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeKms, type FakeKmsCredentials, type FakeKmsKey, startFakeKms } from "../fakes/awsKms.ts";
import { type FakeGitHub, type FakeGitHubApp, type GitHubInstallation, startFakeGitHub } from "../fakes/github.ts";
import { killKeyplaneProcesses, logLines, runKeyplaneProcess } from "../testkit/keyplaneCli.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret } from "../testkit/secrets.ts";

// `keyplane github-token` in direct mode with the app's key in AWS KMS, run as its own process the way
// a container runs it: the AWS SDK finds the credentials in the environment (its default chain, as it
// finds IRSA's web identity on EKS), the key is checked before the token is asked for, and the token
// file is written. The workload's environment holds no private key at all.

const scratch = scratchDirectory("keyplane-github-token-kms-");

describe("keyplane github-token: direct mode with an aws-kms signer", () => {
  let github: FakeGitHub;
  let kms: FakeKms;
  let rex: FakeGitHubApp;
  let acme: GitHubInstallation;
  let key: FakeKmsKey;
  let credentials: FakeKmsCredentials;
  let env: Record<string, string>;

  beforeAll(async () => {
    [github, kms] = await Promise.all([startFakeGitHub(), startFakeKms({ region: "eu-west-1" })]);
    rex = await github.createApp({ slug: `rex-${randomBytes(3).toString("hex")}` });
    for (const line of rex.privateKeyPem.split("\n")) if (line && !line.startsWith("-----")) registerSecret(line);
    acme = github.addInstallation({
      appId: rex.appId,
      account: { login: `acme-${randomBytes(3).toString("hex")}`, type: "Organization" },
      repositories: ["api"],
      permissions: { contents: "read", metadata: "read" },
    });
    key = kms.addKey({ privateKey: rex.privateKeyPem, alias: "rex" });
    credentials = kms.addCredentials({ actions: ["kms:Sign", "kms:GetPublicKey"], keys: [key.arn] });
    registerSecret(credentials.secretAccessKey);
    env = {
      NODE_ENV: "test",
      LOG_LEVEL: "info",
      GITHUB_URL: github.url,
      GITHUB_API_URL: github.url,
      GITHUB_APP_REX_ID: String(rex.appId),
      GITHUB_APP_REX_SIGNER: "aws-kms",
      GITHUB_APP_REX_KMS_KEY_ID: key.arn,
      GITHUB_APP_REX_KMS_ENDPOINT: kms.url,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    };
  });
  afterAll(async () => {
    await killKeyplaneProcesses();
    await Promise.all([github?.close(), kms?.close()]);
  });

  it("writes a working token signed by the KMS key, and exits 0", async () => {
    const output = path.join(scratch.fresh(), "token");
    const from = kms.calls.length;
    const r = await runKeyplaneProcess(["github-token", "--app", "rex", "--installation-id", String(acme.id), "--output", output], env, {
      timeoutMs: 30_000,
      log: { command: "github-token", name: "kms" },
    });
    expect(r.code, r.err).toBe(0);
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(github.isInstallationTokenValid(token)).toBe(true);
    expect(statSync(output).mode & 0o777).toBe(0o600);
    // The check at start (GetPublicKey and a probe signature), then one signature for the token's JWT.
    expect(kms.calls.slice(from).map((c) => `${c.action} ${c.status}`)).toEqual(["GetPublicKey 200", "Sign 200", "Sign 200"]);
    expect(r.err).not.toContain(credentials.secretAccessKey);
    expect(r.err).not.toContain(token);
  });

  it("a key KMS does not know is a configuration error (2) naming the app and the key, found before GitHub is asked", async () => {
    const output = path.join(scratch.fresh(), "token");
    const githubFrom = github.requests.length;
    const r = await runKeyplaneProcess(
      ["github-token", "--app", "rex", "--installation-id", String(acme.id), "--output", output],
      { ...env, GITHUB_APP_REX_KMS_KEY_ID: "alias/not-there", GITHUB_APP_REX_KMS_REGION: "eu-west-1" },
      { timeoutMs: 30_000, log: { command: "github-token", name: "kms-missing" } },
    );
    expect(r.code).toBe(2);
    expect(logLines(r.err, { numericLevel: true }).at(-1)).toMatchObject({
      level: "error",
      msg: "invalid configuration: GitHub App rex: aws-kms key alias/not-there in eu-west-1: kms:GetPublicKey: KMS found no such key (NotFoundException: Alias 'arn:aws:kms:eu-west-1:111122223333:alias/not-there' is not found.)",
    });
    expect(github.requests.length).toBe(githubFrom);
    expect(r.err).not.toContain(credentials.secretAccessKey);
  });
});
