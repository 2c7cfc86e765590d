import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keepCommandLog, scratchDirectory } from "../testkit/scratch.ts";
import { parseGitHubTokenArgs, runGitHubToken } from "../../src/tokenWriter/run.ts";
import { USAGE } from "../../src/cli/main.ts";
import type { Clock } from "../../src/cli/clock.ts";
import { nextRefreshAt, retryDelay, DEFAULT_TIMING } from "../../src/tokenWriter/schedule.ts";
import { TokenSourceError } from "../../src/tokenWriter/tokenSource.ts";
import { loadConfig } from "../../src/config.ts";
import { fingerprint } from "../../src/crypto/fingerprint.ts";
import { startFakeGitHub, type FakeGitHub, type FakeGitHubApp, type GitHubInstallation } from "../fakes/github.ts";
import { logLines as keyplaneLogLines, runKeyplane, spawnKeyplane, type LogLine } from "../testkit/keyplaneCli.ts";
import { browseInstall, freePort, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { waitFor } from "../testkit/waitFor.ts";

// `keyplane github-token`: the token writer a workload runs as an initContainer (one write, exit) or
// as a sidecar (--watch). What the workload gets: a 0600 file holding a working token, replaced
// atomically, never removed while it is good. What its operator gets: exit statuses that tell a bad
// configuration (2) from a refusal (3) from an outage (4), a /healthz, and JSON logs without the token.

const scratchDir = scratchDirectory("keyplane-github-token-");
const outDir = scratchDir.fresh;
const keepLog = (name: string, text: string) => keepCommandLog("github-token", name, text);

/** Registers the body of a PEM (the lines between the armour) with the log scan. */
function registerPem(pem: string): void {
  for (const line of pem.split("\n")) if (line && !line.startsWith("-----")) registerSecret(line);
}

// Its stderr (the JSON log) is kept for the secret scan: the token must never be in it.

/** Runs `keyplane github-token …` in this process. */
const githubToken = (args: string[], env: Record<string, string>) =>
  runKeyplane(["github-token", ...args], env, { command: "github-token", name: "in-process" });

/** Runs bin/keyplane.mjs github-token … as its own process, as a container would; SIGKILL after 30 s. */
const githubTokenProcess = (args: string[], env: Record<string, string>) =>
  spawnKeyplane(["github-token", ...args], env, { timeoutMs: 30_000, log: { command: "github-token", name: "process" } });

/** Every stderr line is a JSON log line; its level may be a string or a number. */
const logLines = (err: string) => keyplaneLogLines(err, { numericLevel: true });

const readIfExists = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : undefined);
const mode = (file: string) => statSync(file).mode & 0o777;
const leftovers = (dir: string, file: string) => readdirSync(dir).filter((f) => f !== path.basename(file));

async function healthz(port: number): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: await res.json() };
}

// ------------------------------------------------------------------------------------------------

describe("keyplane github-token: usage", () => {
  const env = { NODE_ENV: "test", LOG_LEVEL: "warn" };

  it.each([
    { argv: [], message: "github-token needs --app" },
    { argv: ["--app", "rex"], message: "github-token needs --output" },
    { argv: ["--app", "Rex Bot", "--output", "/tmp/t"], message: "--app is an app name of lower-case letters, digits and dashes (got 'Rex Bot')" },
    {
      argv: ["--app", "rex", "--output", "/tmp/t", "--owner", "acme", "--repository", "acme/api"],
      message: "--installation-id, --owner and --repository are alternatives (got --owner and --repository)",
    },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--installation-id", "12a"], message: "--installation-id is a positive whole number (got '12a')" },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--repository", "acme"], message: "--repository is owner/name (got 'acme')" },
    {
      argv: ["--app", "rex", "--output", "/tmp/t", "--permission", "contents"],
      message: "--permission is name=read|write|admin, e.g. contents=read (got 'contents')",
    },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--permission", "contents=owner"], message: "--permission is name=read|write|admin" },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--owner", "acme", "--repositories", "globex/api"], message: "--repositories globex/api is not under acme" },
    {
      argv: ["--app", "rex", "--output", "/tmp/t", "--keyplane-url", "http://keyplane:4000"],
      message: "--keyplane-url and --token-file go together (brokered mode)",
    },
    {
      argv: ["--app", "rex", "--output", "/tmp/t", "--token-file", "/var/run/secrets/token"],
      message: "--keyplane-url and --token-file go together (brokered mode)",
    },
    {
      argv: ["--app", "rex", "--output", "/tmp/t", "--keyplane-url", "ftp://x", "--token-file", "/t", "--owner", "acme"],
      message: "--keyplane-url is an http(s) URL (got 'ftp://x')",
    },
    {
      argv: ["--app", "rex", "--output", "/tmp/t", "--keyplane-url", "http://k", "--token-file", "/t"],
      message: "brokered mode needs one of --installation-id, --owner or --repository",
    },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--health-port", "http"], message: "--health-port is a port number (got 'http')" },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--timeout", "0"], message: "--timeout is a number of seconds (at least 1) (got '0')" },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--scope", "repo"], message: "Unknown option '--scope'" },
    { argv: ["--app", "rex", "--output", "/tmp/t", "--watch=yes"], message: "Option '--watch' does not take an argument" },
  ])("github-token $argv → exit 2: $message", async ({ argv, message }) => {
    const r = await githubToken(argv, env);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err.startsWith(`keyplane: ${message}`), r.err.slice(0, 200)).toBe(true);
    expect(r.err.endsWith(`\n\n${USAGE}`)).toBe(true);
  });

  it("the usage text lists the command, its modes and its exit statuses", () => {
    expect(USAGE).toMatch(/github-token --app NAME --output FILE/);
    expect(USAGE).toMatch(/--keyplane-url URL --token-file FILE/);
    expect(USAGE).toMatch(/3 refused by GitHub or Keyplane, 4 GitHub or Keyplane unreachable/);
  });

  it("reads narrowing flags as one owner's repositories and a permission map", () => {
    const o = parseGitHubTokenArgs([
      "--app",
      "Rex",
      "--output",
      "t",
      "--repositories",
      "acme/api,web",
      "--repositories",
      "API",
      "--permission",
      "contents=read,pull_requests=write",
      "--permission",
      "contents=read",
    ]);
    expect(o.spec).toEqual({ app: "rex", owner: "acme", repositories: ["api", "web"], permissions: { contents: "read", pull_requests: "write" } });
    expect(o.watch).toBe(false);
    expect(parseGitHubTokenArgs(["--app", "rex", "--output", "t", "--repository", "acme/api", "--watch", "--health-port", "8080"])).toMatchObject({
      spec: { app: "rex", repository: "acme/api" },
      watch: true,
      healthPort: 8080,
    });
  });
});

describe("keyplane github-token: the refresh schedule", () => {
  const random = (value: number) => () => value;
  const expiresAt = Date.parse("2030-01-01T12:00:00Z");
  const now = expiresAt - 60 * 60_000;

  it("refreshes between 5 and 10 minutes before expiry, jittered", () => {
    expect(nextRefreshAt(expiresAt, now, DEFAULT_TIMING, random(0))).toBe(expiresAt - 5 * 60_000);
    expect(nextRefreshAt(expiresAt, now, DEFAULT_TIMING, random(0.999999))).toBeLessThan(expiresAt - 10 * 60_000 + 10);
    expect(nextRefreshAt(expiresAt, now, DEFAULT_TIMING, random(0.5))).toBe(expiresAt - 7.5 * 60_000);
  });

  it("asks again about a token already inside the window after 30 s, or when it drops below 5 minutes if sooner, never within 5 s", () => {
    expect(nextRefreshAt(now + 6 * 60_000, now, DEFAULT_TIMING, random(0.5))).toBe(now + 30_000);
    expect(nextRefreshAt(now + 5 * 60_000 + 10_000, now, DEFAULT_TIMING, random(0.5))).toBe(now + 10_000);
    expect(nextRefreshAt(now + 3 * 60_000, now, DEFAULT_TIMING, random(0.5))).toBe(now + 5_000);
  });

  it("backs off from 5 s, up to a minute while unreachable and five while refused, and honours a rate limit", () => {
    const unavailable = new TokenSourceError("unavailable", "down");
    const refused = new TokenSourceError("refused", "no");
    const delays = [1, 2, 3, 4, 5, 6, 10].map((n) => retryDelay(n, unavailable, DEFAULT_TIMING, random(0.5)));
    expect(delays).toEqual([5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
    expect(retryDelay(10, refused, DEFAULT_TIMING, random(0.5))).toBe(300_000);
    expect(retryDelay(1, unavailable, DEFAULT_TIMING, random(0))).toBe(4_000);
    expect(retryDelay(1, unavailable, DEFAULT_TIMING, random(0.999))).toBeCloseTo(6_000, -1);
    expect(retryDelay(1, new TokenSourceError("rate_limited", "slow down", "RATE_LIMITED", 120_000), DEFAULT_TIMING, random(0.5))).toBe(120_000);
  });
});

// ------------------------------------------------------------------------------------------------

describe("keyplane github-token: direct mode against GitHub", () => {
  let github: FakeGitHub;
  let rex: FakeGitHubApp;
  let acme: GitHubInstallation;
  let env: Record<string, string>;

  beforeAll(async () => {
    github = await startFakeGitHub();
    rex = await github.createApp({ slug: `rex-${randomBytes(3).toString("hex")}` });
    registerPem(rex.privateKeyPem);
    acme = github.addInstallation({
      appId: rex.appId,
      account: { login: "acme", type: "Organization" },
      repositories: ["api", "web", "docs"],
      permissions: { contents: "write", metadata: "read", pull_requests: "write" },
    });
    env = {
      NODE_ENV: "test",
      LOG_LEVEL: "info",
      GITHUB_URL: github.url,
      GITHUB_API_URL: github.url,
      GITHUB_APP_REX_ID: String(rex.appId),
      GITHUB_APP_REX_PRIVATE_KEY: rex.privateKeyPem,
    };
  });
  afterAll(() => github?.close());

  /** GET /installation/repositories with the token, as the workload would use it. */
  async function repositoriesWith(token: string): Promise<{ status: number; names: string[] }> {
    const res = await fetch(`${github.url}/installation/repositories`, { headers: { authorization: `token ${token}`, accept: "application/vnd.github+json" } });
    const body = (await res.json()) as { repositories?: Array<{ full_name: string }> };
    return { status: res.status, names: (body.repositories ?? []).map((r) => r.full_name).sort() };
  }

  const issuedTokens = () => github.installationTokens.map((t) => t.token);
  const noTokenIn = (text: string) => {
    for (const token of issuedTokens()) expect(text.includes(token)).toBe(false);
  };

  it("writes a working token to a 0600 file, atomically and without a trailing newline, and exits 0", async () => {
    const dir = outDir();
    const output = path.join(dir, "token");
    const r = await githubToken(["--app", "rex", "--installation-id", String(acme.id), "--output", output], env);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe("");
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(token).toMatch(/^ghs_[A-Za-z0-9]+$/); // the token alone: no newline, no padding
    expect(mode(output)).toBe(0o600);
    expect(leftovers(dir, output)).toEqual([]);
    expect(await repositoriesWith(token)).toEqual({ status: 200, names: ["acme/api", "acme/docs", "acme/web"] });

    const lines = logLines(r.err);
    const written = lines.find((l) => l.msg === "token written")!;
    expect(written).toMatchObject({ level: "info", app: "rex", mode: "direct", installationId: acme.id, fingerprint: fingerprint(token), output });
    expect(Date.parse(written.expiresAt as string)).toBeGreaterThan(Date.now() + 55 * 60_000);
    noTokenIn(r.err);
  });

  it("passes the narrowing through: --repository limits the token to it, --permission to those permissions", async () => {
    const output = path.join(outDir(), "token");
    const r = await githubToken(["--app", "rex", "--repository", "acme/api", "--permission", "contents=read", "--output", output], env);
    expect(r.code, r.err).toBe(0);
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(await repositoriesWith(token)).toEqual({ status: 200, names: ["acme/api"] });
    expect(github.installationTokens.find((t) => t.token === token)).toMatchObject({
      installationId: acme.id,
      repositories: ["api"],
      permissions: { contents: "read" },
    });
    expect(logLines(r.err).find((l) => l.msg === "token written")).toMatchObject({ repositories: ["acme/api"], permissions: { contents: "read" } });

    const two = path.join(outDir(), "token");
    const r2 = await githubToken(["--app", "rex", "--owner", "acme", "--repositories", "api,web", "--output", two], env);
    expect(r2.code, r2.err).toBe(0);
    const token2 = readFileSync(two, "utf8");
    registerSecret(token2);
    expect(await repositoriesWith(token2)).toEqual({ status: 200, names: ["acme/api", "acme/web"] });
  });

  it("replaces an existing file by a rename (a reader never sees half a token), makes it 0600, and clears an interrupted run's temporary file", async () => {
    const dir = outDir();
    const output = path.join(dir, "token");
    writeFileSync(output, "stale-token", { mode: 0o644 });
    writeFileSync(path.join(dir, ".token.99999.0123456789ab.tmp"), "half-a-tok", { mode: 0o600 });
    writeFileSync(path.join(dir, "other-file"), "not ours");
    const before = statSync(output).ino;
    const r = await githubToken(["--app", "rex", "--owner", "acme", "--output", output], env);
    expect(r.code, r.err).toBe(0);
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(token).not.toBe("stale-token");
    expect(statSync(output).ino).not.toBe(before);
    expect(mode(output)).toBe(0o600);
    expect(leftovers(dir, output)).toEqual(["other-file"]);
    expect(logLines(r.err).find((l) => l.msg.startsWith("removed temporary files"))).toMatchObject({ level: "warn", count: 1 });
  });

  it("reads the app from mounted secret files (GITHUB_APPS_DIR) as the server does", async () => {
    const apps = path.join(outDir(), "apps");
    mkdirSync(path.join(apps, "rex"), { recursive: true });
    writeFileSync(path.join(apps, "rex", "appId"), `${rex.appId}\n`);
    writeFileSync(path.join(apps, "rex", "privateKey"), rex.privateKeyPem);
    writeFileSync(path.join(apps, "rex", "webhookSecret"), rex.webhookSecret);
    const output = path.join(outDir(), "token");
    const r = await githubToken(["--app", "rex", "--owner", "acme", "--output", output], {
      NODE_ENV: "test",
      GITHUB_URL: github.url,
      GITHUB_API_URL: github.url,
      GITHUB_APPS_DIR: apps,
    });
    expect(r.code, r.err).toBe(0);
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect((await repositoriesWith(token)).status).toBe(200);
  });

  it("a missing or broken app is a configuration error (2) naming the app, never the key", async () => {
    const output = path.join(outDir(), "token");
    const missing = await githubToken(["--app", "clippy", "--owner", "acme", "--output", output], env);
    expect(missing.code).toBe(2);
    expect(logLines(missing.err).at(-1)).toMatchObject({
      level: "error",
      msg: expect.stringMatching(/GitHub App clippy is not configured.*GITHUB_APP_CLIPPY_ID/),
    });

    const broken = rex.privateKeyPem.slice(0, 200);
    const bad = await githubToken(["--app", "rex", "--owner", "acme", "--output", output], { ...env, GITHUB_APP_REX_PRIVATE_KEY: broken });
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/GitHub App rex/);
    for (const line of broken.split("\n").filter((l) => l.length > 10 && !l.startsWith("-----"))) expect(bad.err).not.toContain(line);

    // Another app's broken settings do not stop this one.
    const other = await githubToken(["--app", "rex", "--owner", "acme", "--output", output], {
      ...env,
      GITHUB_APP_QA_ID: "not-an-id",
      GITHUB_APP_QA_PRIVATE_KEY: "nonsense",
    });
    expect(other.code, other.err).toBe(0);
    registerSecret(readFileSync(output, "utf8"));
  });

  it("an output directory that does not exist is a configuration error (2), found before asking GitHub", async () => {
    const requests = github.requests.length;
    const r = await githubToken(["--app", "rex", "--owner", "acme", "--output", path.join(scratchDir.root(), "nope", "token")], env);
    expect(r.code).toBe(2);
    expect(logLines(r.err).at(-1)).toMatchObject({ level: "error", msg: expect.stringMatching(/directory of --output does not exist/) });
    expect(github.requests.length).toBe(requests);
  });

  it.each([
    { what: "a repository the app is not installed on", args: ["--repository", "acme/nope"] },
    { what: "an owner without the app", args: ["--owner", "globex"] },
    { what: "an installation that does not exist", args: ["--installation-id", "1"] },
    { what: "a repository outside the installation", args: ["--owner", "acme", "--repositories", "secret-sauce"] },
    { what: "a permission the installation lacks", args: ["--owner", "acme", "--permission", "administration=write"] },
  ])("GitHub refusing ($what) exits 3 and writes nothing", async ({ args }) => {
    const dir = outDir();
    const output = path.join(dir, "token");
    const r = await githubToken(["--app", "rex", ...args, "--output", output], env);
    expect(r.code, r.err).toBe(3);
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
    expect(logLines(r.err).at(-1)).toMatchObject({ level: "error", kind: "refused" });
  });

  it("GitHub unreachable exits 4 and writes nothing", async () => {
    const port = await freePort(); // nothing listens there
    const output = path.join(outDir(), "token");
    const started = Date.now();
    const r = await githubToken(["--app", "rex", "--installation-id", String(acme.id), "--output", output, "--timeout", "3"], {
      ...env,
      GITHUB_API_URL: `http://127.0.0.1:${port}`,
    });
    expect(r.code, r.err).toBe(4);
    expect(existsSync(output)).toBe(false);
    expect(logLines(r.err).at(-1)).toMatchObject({ level: "error", kind: "unavailable" });
    expect(Date.now() - started).toBeLessThan(9_000);
  });

  it("--watch rewrites the token before it expires, keeps the last good one while GitHub fails, and /healthz says whether it is good for 5 more minutes", async () => {
    // Its own installation: the failures queued below must not reach other tests.
    const watched = github.addInstallation({
      appId: rex.appId,
      account: { login: "initech", type: "Organization" },
      repositories: ["tps"],
      permissions: { contents: "read" },
    });
    const dir = outDir();
    const output = path.join(dir, "token");
    let skew = 0;
    const clock: Clock = {
      now: () => Date.now() + skew,
      random: Math.random,
      sleep: (ms, signal) =>
        new Promise((resolve) => {
          const timer = setTimeout(resolve, ms);
          signal.addEventListener(
            "abort",
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        }),
    };
    const stop = new AbortController();
    const lines: LogLine[] = [];
    const onDiskAtFailure: Array<{ file: string | undefined; lastWritten: string | undefined }> = [];
    let err = "";
    let port = 0;
    const io = {
      out: (s: string) => void s,
      err: (s: string) => {
        err += s;
        for (const line of s.split("\n").filter(Boolean)) {
          const parsed = JSON.parse(line) as LogLine;
          if (parsed.msg.startsWith("token refresh failed")) {
            const lastWritten = lines.filter((l) => l.msg === "token written").at(-1)?.fingerprint as string | undefined;
            const file = readIfExists(output);
            onDiskAtFailure.push({ file: file === undefined ? undefined : fingerprint(file), lastWritten });
          }
          lines.push(parsed);
        }
      },
    };
    const args = [
      "--app",
      "rex",
      "--installation-id",
      String(watched.id),
      "--output",
      output,
      "--watch",
      "--health-port",
      "0",
      "--refresh-before",
      "3598",
      "--retry-delay",
      "0.2",
    ];
    const running = runGitHubToken(args, loadConfig(env), io, { clock, signal: stop.signal, onHealthListening: (p) => (port = p) });
    try {
      const first = await waitFor("the first token", () => readIfExists(output));
      registerSecret(first);
      expect(mode(output)).toBe(0o600);
      const ok = await healthz(port);
      expect(ok).toEqual({ status: 200, body: { status: "ok", expiresAt: expect.any(String), validForSeconds: expect.any(Number) } });
      expect(Date.parse(ok.body.expiresAt)).toBeGreaterThan(Date.now() + 55 * 60_000);

      // GitHub refuses the next two refreshes: retried with backoff, the file keeps the first token.
      const path_ = `/app/installations/${watched.id}/access_tokens`;
      github.failNext(path_, { status: 403, body: { message: "Resource not accessible by integration", documentation_url: "https://docs.github.com/rest" } });
      github.failNext(path_, { status: 403, body: { message: "Resource not accessible by integration", documentation_url: "https://docs.github.com/rest" } });
      const second = await waitFor("a refreshed token", () => {
        const now = readIfExists(output);
        return now !== undefined && now !== first ? now : undefined;
      });
      registerSecret(second);
      expect(onDiskAtFailure.length).toBeGreaterThanOrEqual(2);
      for (const seen of onDiskAtFailure) expect(seen.file).toBe(seen.lastWritten);
      expect(onDiskAtFailure[0]!.file).toBe(fingerprint(first));
      const failed = lines.filter((l) => l.msg.startsWith("token refresh failed"));
      expect(failed[0]).toMatchObject({ level: "warn", kind: "refused", failures: 1, fingerprint: fingerprint(first), expiresAt: expect.any(String) });
      expect(failed[1]).toMatchObject({ failures: 2 });
      expect((await repositoriesWith(second)).status).toBe(200);
      expect(leftovers(dir, output)).toEqual([]);

      // Fifty-seven minutes later by this clock, GitHub down: the token on disk stays, /healthz turns 503.
      for (let i = 0; i < 50; i++) github.failNext(path_, { status: 403 });
      skew = 57 * 60_000;
      const expiring = await waitFor("/healthz 503", async () => {
        const h = await healthz(port);
        return h.status === 503 ? h : undefined;
      });
      expect(expiring.body).toMatchObject({ status: "expiring", expiresAt: expect.any(String) });
      skew = 61 * 60_000;
      expect((await healthz(port)).body).toMatchObject({ status: "expired" });
      // The file still holds the last token written; nothing was removed.
      const kept = readIfExists(output);
      expect(kept).toBeDefined();
      expect(fingerprint(kept!)).toBe(lines.filter((l) => l.msg === "token written").at(-1)!.fingerprint);
      expect(leftovers(dir, output)).toEqual([]);

      // Someone else's file at the path is not our token.
      writeFileSync(output, "replaced");
      expect((await healthz(port)).body).toMatchObject({ status: "file_changed" });
    } finally {
      stop.abort();
    }
    expect(await running).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    keepLog("watch", err);
    noTokenIn(err);
    expect(lines.at(-1)).toMatchObject({ msg: "stopped" });
  });

  it("bin/keyplane.mjs github-token, as its own process: exit 0 with the file written, 3 on a refusal, nothing on stdout, no token on stderr", async () => {
    const output = path.join(outDir(), "token");
    const ok = await githubTokenProcess(["--app", "rex", "--owner", "acme", "--output", output], env).done;
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toBe("");
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(mode(output)).toBe(0o600);
    expect(logLines(ok.err).some((l) => l.msg === "token written" && l.fingerprint === fingerprint(token))).toBe(true);
    noTokenIn(ok.err);

    const refused = await githubTokenProcess(["--app", "rex", "--repository", "acme/nope", "--output", path.join(outDir(), "token")], env).done;
    expect(refused.code, refused.err).toBe(3);
    expect(refused.out).toBe("");

    const usage = await githubTokenProcess(["--app", "rex"], env).done;
    expect(usage.code).toBe(2);
  });

  it("bin/keyplane.mjs github-token --watch as a sidecar: /healthz 200 once written, refreshes, exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const output = path.join(outDir(), "token");
    const proc = githubTokenProcess(
      ["--app", "rex", "--owner", "acme", "--output", output, "--watch", "--health-port", String(port), "--refresh-before", "3599"],
      env,
    );
    try {
      const first = await waitFor("the first token", () => readIfExists(output), 15_000);
      registerSecret(first);
      expect((await healthz(port)).status).toBe(200);
      const second = await waitFor("a refresh", () => {
        const now = readIfExists(output);
        return now !== undefined && now !== first ? now : undefined;
      });
      registerSecret(second);
    } finally {
      proc.kill("SIGTERM");
    }
    const r = await proc.done;
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe("");
    const lines = logLines(r.err);
    expect(lines.filter((l) => l.msg === "token written").length).toBeGreaterThanOrEqual(2);
    expect(lines.at(-1)).toMatchObject({ msg: "stopped" });
    noTokenIn(r.err);
  });
});

// ------------------------------------------------------------------------------------------------

interface StubCall {
  at: number;
  authorization: string | undefined;
  body: { query: string; variables: { input: Record<string, unknown> } };
}
type StubAnswer = { status: number; json?: unknown; text?: string; hang?: boolean };

/** A stand-in for Keyplane's /graphql that answers what each test scripts, and records what it was asked. */
async function startStubKeyplane(answer: (call: StubCall, n: number) => StubAnswer): Promise<{ url: string; calls: StubCall[]; close(): Promise<void> }> {
  const calls: StubCall[] = [];
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", () => {
      const call: StubCall = { at: Date.now(), authorization: req.headers.authorization, body: JSON.parse(raw || "{}") };
      calls.push(call);
      const a = req.url === "/graphql" && req.method === "POST" ? answer(call, calls.length) : { status: 404, text: "not found" };
      if (a.hang) return;
      res.writeHead(a.status, { "content-type": a.json !== undefined ? "application/json" : "text/plain" });
      res.end(a.json !== undefined ? JSON.stringify(a.json) : (a.text ?? ""));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const issued = (token: string, expiresInSeconds = 3600, extra: Record<string, unknown> = {}) => ({
  status: 200,
  json: {
    data: {
      issueGitHubToken: {
        id: randomBytes(8).toString("hex"),
        token,
        expiresAt: new Date(Date.now() + expiresInSeconds * 1000).toISOString(),
        installationId: 4242,
        repositories: ["acme/api"],
        permissions: { contents: "read" },
        cached: false,
        fingerprint: fingerprint(token),
        ...extra,
      },
    },
  },
});
const gqlError = (code: string, message: string, status = 200, extensions: Record<string, unknown> = {}) => ({
  status,
  json: { data: null, errors: [{ message, extensions: { code, ...extensions } }] },
});

describe("keyplane github-token: brokered mode (the Keyplane GraphQL contract)", () => {
  const env = { NODE_ENV: "test" };
  let tokenFile: string;
  beforeAll(() => {
    tokenFile = path.join(outDir(), "service-token");
    writeFileSync(tokenFile, "kp-service-token-1\n");
  });
  const fakeGhs = () => `ghs_${randomBytes(24).toString("hex")}`;

  it("asks issueGitHubToken with the service token from the file, sends the narrowing as given, writes the answer", async () => {
    const token = fakeGhs();
    registerSecret(token);
    const stub = await startStubKeyplane(() => issued(token, 3600, { cached: true }));
    try {
      const output = path.join(outDir(), "token");
      const r = await githubToken(
        [
          "--app",
          "rex",
          "--keyplane-url",
          stub.url,
          "--token-file",
          tokenFile,
          "--repository",
          "acme/api",
          "--repositories",
          "web",
          "--permission",
          "contents=read,pull_requests=write",
          "--output",
          output,
        ],
        env,
      );
      expect(r.code, r.err).toBe(0);
      expect(readFileSync(output, "utf8")).toBe(token);
      expect(mode(output)).toBe(0o600);
      expect(stub.calls).toHaveLength(1);
      const call = stub.calls[0]!;
      expect(call.authorization).toBe("Bearer kp-service-token-1");
      expect(call.body.query.replace(/\s+/g, " ")).toContain(
        "mutation IssueGitHubToken($input: IssueGitHubTokenInput!) { issueGitHubToken(input: $input) { id token expiresAt installationId repositories permissions cached fingerprint } }",
      );
      expect(call.body.variables.input).toEqual({
        app: "rex",
        repository: "acme/api",
        repositories: ["web"],
        permissions: { contents: "read", pull_requests: "write" },
        minValiditySeconds: 900,
      });
      expect(logLines(r.err).find((l) => l.msg === "token written")).toMatchObject({
        app: "rex",
        mode: "brokered",
        installationId: 4242,
        fingerprint: fingerprint(token),
        cached: true,
      });
      expect(r.err).not.toContain(token);
      expect(r.err).not.toContain("kp-service-token-1");
    } finally {
      await stub.close();
    }
  });

  it("accepts the URL with or without /graphql and sends --installation-id as a number", async () => {
    const token = fakeGhs();
    registerSecret(token);
    const stub = await startStubKeyplane(() => issued(token));
    try {
      const r = await githubToken(
        [
          "--app",
          "rex",
          "--keyplane-url",
          `${stub.url}/graphql`,
          "--token-file",
          tokenFile,
          "--installation-id",
          "77",
          "--output",
          path.join(outDir(), "token"),
        ],
        env,
      );
      expect(r.code, r.err).toBe(0);
      expect(stub.calls[0]!.body.variables.input).toEqual({ app: "rex", installationId: 77, minValiditySeconds: 900 });
    } finally {
      await stub.close();
    }
  });

  it.each([
    { what: "FORBIDDEN (no token policy allows it)", answer: gqlError("FORBIDDEN", "no token policy allows this request"), code: 3 },
    { what: "UNAUTHENTICATED (HTTP 401)", answer: gqlError("UNAUTHENTICATED", "authentication required", 401), code: 3 },
    { what: "NOT_FOUND", answer: gqlError("NOT_FOUND", "installation not found"), code: 3 },
    { what: "BAD_USER_INPUT", answer: gqlError("BAD_USER_INPUT", "app: no GitHub App named rex is configured"), code: 3 },
    { what: "PROVIDER_ERROR", answer: gqlError("PROVIDER_ERROR", "github answered installation_suspended (HTTP 403)"), code: 3 },
    { what: "RATE_LIMITED beyond the once-mode budget", answer: gqlError("RATE_LIMITED", "slow down", 200, { retryAfter: 3600 }), code: 3 },
    { what: "a masked internal error", answer: gqlError("INTERNAL_SERVER_ERROR", "Unexpected error."), code: 4 },
    { what: "HTTP 503 from a proxy", answer: { status: 503, text: "upstream connect error" }, code: 4 },
    { what: "HTTP 502 with HTML", answer: { status: 502, text: "<html>Bad Gateway</html>" }, code: 4 },
    { what: "an answer without a token", answer: { status: 200, json: { data: { issueGitHubToken: null } } }, code: 4 },
  ])("$what → exit $code, nothing written", async ({ answer, code }) => {
    const stub = await startStubKeyplane(() => answer);
    try {
      const dir = outDir();
      const output = path.join(dir, "token");
      const r = await githubToken(["--app", "rex", "--keyplane-url", stub.url, "--token-file", tokenFile, "--owner", "acme", "--output", output], env);
      expect(r.code, r.err).toBe(code);
      expect(readdirSync(dir)).toEqual([]);
      expect(stub.calls).toHaveLength(1);
      expect(logLines(r.err).at(-1)).toMatchObject({ level: "error", kind: code === 4 ? "unavailable" : expect.stringMatching(/refused|rate_limited/) });
    } finally {
      await stub.close();
    }
  });

  it("a short rate limit is waited out in once-mode", async () => {
    const token = fakeGhs();
    registerSecret(token);
    const stub = await startStubKeyplane((_call, n) => (n === 1 ? gqlError("RATE_LIMITED", "slow down", 200, { retryAfter: 1 }) : issued(token)));
    try {
      const output = path.join(outDir(), "token");
      const r = await githubToken(["--app", "rex", "--keyplane-url", stub.url, "--token-file", tokenFile, "--owner", "acme", "--output", output], env);
      expect(r.code, r.err).toBe(0);
      expect(stub.calls).toHaveLength(2);
      expect(stub.calls[1]!.at - stub.calls[0]!.at).toBeGreaterThanOrEqual(950);
      expect(readFileSync(output, "utf8")).toBe(token);
    } finally {
      await stub.close();
    }
  });

  it("Keyplane unreachable or not answering in time → exit 4", async () => {
    const port = await freePort();
    const r = await githubToken(
      ["--app", "rex", "--keyplane-url", `http://127.0.0.1:${port}`, "--token-file", tokenFile, "--owner", "acme", "--output", path.join(outDir(), "token")],
      env,
    );
    expect(r.code, r.err).toBe(4);
    expect(logLines(r.err).at(-1)).toMatchObject({ kind: "unavailable", code: "network_error" });

    const stub = await startStubKeyplane(() => ({ status: 200, hang: true }));
    try {
      const started = Date.now();
      const slow = await githubToken(
        ["--app", "rex", "--keyplane-url", stub.url, "--token-file", tokenFile, "--owner", "acme", "--timeout", "1", "--output", path.join(outDir(), "token")],
        env,
      );
      expect(slow.code, slow.err).toBe(4);
      expect(logLines(slow.err).at(-1)).toMatchObject({ kind: "unavailable", code: "timeout" });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await stub.close();
    }
  });

  it("a missing or empty token file is a configuration error (2)", async () => {
    const stub = await startStubKeyplane(() => issued(fakeGhs()));
    try {
      const missing = await githubToken(
        [
          "--app",
          "rex",
          "--keyplane-url",
          stub.url,
          "--token-file",
          path.join(scratchDir.root(), "absent"),
          "--owner",
          "acme",
          "--output",
          path.join(outDir(), "token"),
        ],
        env,
      );
      expect(missing.code).toBe(2);
      expect(logLines(missing.err).at(-1)!.msg).toMatch(/cannot read --token-file .*absent \(ENOENT\)/);
      const empty = path.join(outDir(), "empty");
      writeFileSync(empty, "\n");
      const blank = await githubToken(
        ["--app", "rex", "--keyplane-url", stub.url, "--token-file", empty, "--owner", "acme", "--output", path.join(outDir(), "token")],
        env,
      );
      expect(blank.code).toBe(2);
      expect(stub.calls).toHaveLength(0);
    } finally {
      await stub.close();
    }
  });

  it("--watch re-reads a rotated service token, honours retryAfter and keeps the last token meanwhile", async () => {
    const rotating = path.join(outDir(), "service-token");
    writeFileSync(rotating, "kp-service-token-A");
    const [a, b] = [fakeGhs(), fakeGhs()];
    registerSecret(a);
    registerSecret(b);
    const output = path.join(outDir(), "token");
    let fileAtSecondCall: string | undefined;
    const stub = await startStubKeyplane((_call, n) => {
      if (n === 1) return issued(a, 3600);
      if (n === 2) {
        fileAtSecondCall = readIfExists(output);
        return gqlError("RATE_LIMITED", "slow down", 200, { retryAfter: 1 });
      }
      return issued(b, 3600);
    });
    const stop = new AbortController();
    let err = "";
    const running = runGitHubToken(
      [
        "--app",
        "rex",
        "--keyplane-url",
        stub.url,
        "--token-file",
        rotating,
        "--owner",
        "acme",
        "--output",
        output,
        "--watch",
        "--refresh-before",
        "3599.5",
        "--retry-delay",
        "0.1",
      ],
      loadConfig(env),
      { out: () => {}, err: (s) => void (err += s) },
      { signal: stop.signal },
    );
    try {
      await waitFor("token A", () => readIfExists(output) === a);
      writeFileSync(rotating, "kp-service-token-B\n");
      await waitFor("token B", () => readIfExists(output) === b);
    } finally {
      stop.abort();
    }
    expect(await running).toBe(0);
    await stub.close();
    expect(stub.calls[0]!.authorization).toBe("Bearer kp-service-token-A");
    expect(stub.calls[1]!.authorization).toBe("Bearer kp-service-token-B");
    expect(fileAtSecondCall).toBe(a);
    expect(stub.calls[2]!.at - stub.calls[1]!.at).toBeGreaterThanOrEqual(950);
    expect(logLines(err).find((l) => l.msg.startsWith("token refresh failed"))).toMatchObject({
      kind: "rate_limited",
      code: "RATE_LIMITED",
      retryInSeconds: expect.any(Number),
    });
    keepLog("brokered-watch", err);
    expect(err).not.toContain(a);
    expect(err).not.toContain(b);
  });
});

// ------------------------------------------------------------------------------------------------

describe("keyplane github-token: brokered mode against a running Keyplane", () => {
  let world: ProviderWorld;
  let app: TestApp;
  let tenant: SeededTenant;
  let tokenFile: string;
  const login = `acme-${randomBytes(3).toString("hex")}`;

  beforeAll(async () => {
    world = await startProviderWorld();
    registerPem(world.githubApp.privateKeyPem);
    app = await createTestApp({ env: world.env, name: "github-token-brokered" });
    tenant = await app.seedTenant();
    world.github.setNextInstall({
      account: { login, type: "Organization" },
      repositories: ["api", "web"],
      permissions: { contents: "write", metadata: "read" },
    });
    const installed = await browseInstall(app, "github", tenant.tokens.admin);
    expect(installed.status, JSON.stringify(installed.body)).toBe(200);
    const policy = await app.gql(
      `mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name } }`,
      { input: { name: "ci-read", app: "default", roles: ["service"], repositories: [`${login}/api`], permissions: { contents: "read" } } },
      { token: tenant.tokens.admin },
    );
    expect(policy.errors, JSON.stringify(policy.errors)).toBeUndefined();
    tokenFile = path.join(outDir(), "service-token");
    writeFileSync(tokenFile, tenant.tokens.service);
  });
  afterAll(async () => {
    await app?.close();
    await world?.close();
  });

  it("writes a token Keyplane issued under the tenant's policy; the workload never holds the app key", async () => {
    const output = path.join(outDir(), "token");
    const r = await githubToken(["--app", "default", "--keyplane-url", app.url, "--token-file", tokenFile, "--owner", login, "--output", output], {
      NODE_ENV: "test",
    });
    expect(r.code, r.err).toBe(0);
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(mode(output)).toBe(0o600);
    const res = await fetch(`${world.github.url}/installation/repositories`, { headers: { authorization: `token ${token}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { repositories: Array<{ full_name: string }> };
    expect(body.repositories.map((r) => r.full_name)).toEqual([`${login}/api`]);
    expect(world.github.installationTokens.find((t) => t.token === token)).toMatchObject({ permissions: { contents: "read" }, repositories: ["api"] });
    expect(logLines(r.err).find((l) => l.msg === "token written")).toMatchObject({ mode: "brokered", fingerprint: fingerprint(token) });
    expect(r.err).not.toContain(token);
  });

  it("a repository outside the policy is refused (3), and so is a bad service token", async () => {
    const output = path.join(outDir(), "token");
    const denied = await githubToken(
      ["--app", "default", "--keyplane-url", app.url, "--token-file", tokenFile, "--repository", `${login}/web`, "--output", output],
      { NODE_ENV: "test" },
    );
    expect(denied.code, denied.err).toBe(3);
    expect(logLines(denied.err).at(-1)).toMatchObject({ kind: "refused", code: "FORBIDDEN" });

    const forged = path.join(outDir(), "forged");
    writeFileSync(forged, "not-a-keyplane-token");
    const unauthenticated = await githubToken(["--app", "default", "--keyplane-url", app.url, "--token-file", forged, "--owner", login, "--output", output], {
      NODE_ENV: "test",
    });
    expect(unauthenticated.code, unauthenticated.err).toBe(3);
    expect(logLines(unauthenticated.err).at(-1)).toMatchObject({ kind: "refused", code: "UNAUTHENTICATED" });
    expect(existsSync(output)).toBe(false);
  });

  it("bin/keyplane.mjs github-token in brokered mode, as its own process", async () => {
    const output = path.join(outDir(), "token");
    const r = await githubTokenProcess(
      ["--app", "default", "--keyplane-url", app.url, "--token-file", tokenFile, "--repository", `${login}/api`, "--output", output],
      { NODE_ENV: "test" },
    ).done;
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe("");
    const token = readFileSync(output, "utf8");
    registerSecret(token);
    expect(r.err).not.toContain(token);
    expect(r.err).not.toContain(tenant.tokens.service);
  });
});
