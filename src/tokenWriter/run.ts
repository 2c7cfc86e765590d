import { parseArgs } from "node:util";
import { systemClock, type Clock } from "../cli/clock.ts";
import { UsageError, type CliIo } from "../cli/command.ts";
import { jsonLog } from "../cli/jsonLog.ts";
import { removeStaleTemporaries } from "../cli/secretFile.ts";
import type { Config } from "../config.ts";
import { ConfigError } from "../config.ts";
import { createLogger } from "../logger.ts";
import { fingerprint } from "../crypto/fingerprint.ts";
import { GITHUB_APP_ENV_SUFFIXES } from "../github/appRegistry.ts";
import { startHealthServer, type HealthServer, type WriterState } from "./health.ts";
import { outputProblem } from "./outputFile.ts";
import { runOnce, runWatch } from "./refreshLoop.ts";
import { DEFAULT_TIMING, type Timing } from "./schedule.ts";
import { brokeredSource, classifyGitHubError, TokenSourceError, type TokenSource, type TokenSpec } from "./tokenSource.ts";

/**
 * `keyplane github-token`: writes a GitHub App installation token for a workload to a file.
 *
 *   brokered (recommended): --keyplane-url URL --token-file PATH. Keyplane's issueGitHubToken mutation,
 *     authenticated with the service token in the file (re-read on every request, so a rotated
 *     projected token works). Keyplane's token policies apply; the workload never holds the app key.
 *   direct: the app's key from GITHUB_APP_<NAME>_* or GITHUB_APPS_DIR/<name>/, exactly as the server
 *     reads it; the installation is resolved and the token minted at GitHub.
 *
 * The file holds the token alone, without a trailing newline, mode 0600, replaced atomically.
 * Once-mode (default) exits after one write: 0, or 2 configuration, 3 refused, 4 unavailable.
 * --watch refreshes 5–10 minutes (jittered) before expiry, retries failures with backoff and never
 * removes the last good token; SIGTERM/SIGINT stop it with exit 0. --health-port serves /healthz.
 * Logs are JSON lines on stderr without the token (its sha256 fingerprint instead); stdout stays empty.
 */

export interface GitHubTokenOptions {
  spec: TokenSpec;
  output: string;
  watch: boolean;
  healthPort?: number;
  brokered?: { keyplaneUrl: string; tokenFile: string };
  timing: Timing;
}

const OPTIONS = {
  app: { type: "string" },
  "installation-id": { type: "string" },
  owner: { type: "string" },
  repository: { type: "string" },
  repositories: { type: "string", multiple: true },
  permission: { type: "string", multiple: true },
  output: { type: "string" },
  watch: { type: "boolean" },
  "health-port": { type: "string" },
  "keyplane-url": { type: "string" },
  "token-file": { type: "string" },
  timeout: { type: "string" },
  // Not in the usage text: for tests, which cannot wait for a token to come within minutes of expiry.
  // --refresh-before: a fixed lead in seconds (no jitter, and a 1 s floor between requests instead of 30 s).
  "refresh-before": { type: "string" },
  // --retry-delay: the first retry's delay in seconds (default 5).
  "retry-delay": { type: "string" },
} as const;

const NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const LOGIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const REPO_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const PERMISSION = /^([a-z_]{1,60})=(read|write|admin)$/;

function seconds(flag: string, value: string, { min = 0, integer = false } = {}): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} is ${integer ? "a whole number" : "a number"} of seconds${min ? ` (at least ${min})` : ""} (got '${value}')`);
  }
  return n;
}

/** The command line of `github-token` (everything after the command name). Throws UsageError. */
export function parseGitHubTokenArgs(args: string[]): GitHubTokenOptions {
  const v = parseArgs({ args, options: OPTIONS, allowPositionals: false, strict: true }).values;
  if (!v.app) throw new UsageError("github-token needs --app (the GitHub App's name, e.g. rex)");
  const app = v.app.toLowerCase();
  if (!NAME.test(app)) throw new UsageError(`--app is an app name of lower-case letters, digits and dashes (got '${v.app}')`);
  if (!v.output) throw new UsageError("github-token needs --output (the file to write the token to)");

  const targets = (["installation-id", "owner", "repository"] as const).filter((f) => v[f] !== undefined);
  if (targets.length > 1)
    throw new UsageError(`--installation-id, --owner and --repository are alternatives (got ${targets.map((t) => `--${t}`).join(" and ")})`);
  const spec: TokenSpec = { app };
  let owner: string | undefined;
  if (v["installation-id"] !== undefined) {
    const id = Number(v["installation-id"]);
    if (!/^\d+$/.test(v["installation-id"]) || !Number.isSafeInteger(id) || id <= 0)
      throw new UsageError(`--installation-id is a positive whole number (got '${v["installation-id"]}')`);
    spec.installationId = id;
  }
  if (v.owner !== undefined) {
    if (!LOGIN.test(v.owner)) throw new UsageError(`--owner is a GitHub user or organization login (got '${v.owner}')`);
    spec.owner = owner = v.owner;
  }
  if (v.repository !== undefined) {
    const [o, name, extra] = v.repository.split("/");
    if (extra !== undefined || !o || !name || !LOGIN.test(o) || !REPO_NAME.test(name))
      throw new UsageError(`--repository is owner/name (got '${v.repository}')`);
    spec.repository = v.repository;
    owner = o;
  }

  // --repositories a,b --repositories c: names, or owner/name of the one owner.
  const repositories: string[] = [];
  for (const entry of (v.repositories ?? []).flatMap((r) => r.split(","))) {
    const item = entry.trim();
    if (!item) continue;
    const parts = item.split("/");
    const name = parts.length === 2 ? parts[1]! : parts[0]!;
    if (parts.length > 2 || !REPO_NAME.test(name) || (parts.length === 2 && !LOGIN.test(parts[0]!)))
      throw new UsageError(`--repositories takes names or owner/name (got '${item}')`);
    if (parts.length === 2) {
      if (owner !== undefined && owner.toLowerCase() !== parts[0]!.toLowerCase()) {
        throw new UsageError(`--repositories ${item} is not under ${owner}: a token covers one owner's repositories`);
      }
      owner ??= parts[0]!;
      if (spec.installationId === undefined && spec.owner === undefined && spec.repository === undefined) spec.owner = owner;
    }
    if (!repositories.some((r) => r.toLowerCase() === name.toLowerCase())) repositories.push(name);
  }
  if (repositories.length) spec.repositories = repositories;

  const permissions: Record<string, string> = {};
  for (const entry of (v.permission ?? []).flatMap((p) => p.split(","))) {
    const item = entry.trim();
    if (!item) continue;
    const m = PERMISSION.exec(item);
    if (!m) throw new UsageError(`--permission is name=read|write|admin, e.g. contents=read (got '${item}')`);
    if (permissions[m[1]!] !== undefined && permissions[m[1]!] !== m[2]) throw new UsageError(`--permission ${m[1]} given twice with different levels`);
    permissions[m[1]!] = m[2]!;
  }
  if (Object.keys(permissions).length) spec.permissions = permissions;

  let brokered: GitHubTokenOptions["brokered"];
  if (v["keyplane-url"] !== undefined || v["token-file"] !== undefined) {
    if (!v["keyplane-url"] || !v["token-file"]) throw new UsageError("--keyplane-url and --token-file go together (brokered mode)");
    let url: URL;
    try {
      url = new URL(v["keyplane-url"]);
    } catch {
      throw new UsageError(`--keyplane-url is an http(s) URL (got '${v["keyplane-url"]}')`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--keyplane-url is an http(s) URL (got '${v["keyplane-url"]}')`);
    if (url.username || url.password) throw new UsageError("--keyplane-url must not carry credentials (use --token-file)");
    brokered = { keyplaneUrl: url.toString(), tokenFile: v["token-file"] };
    if (spec.installationId === undefined && spec.owner === undefined && spec.repository === undefined) {
      throw new UsageError("brokered mode needs one of --installation-id, --owner or --repository");
    }
  }

  let healthPort: number | undefined;
  if (v["health-port"] !== undefined) {
    healthPort = Number(v["health-port"]);
    if (!/^\d+$/.test(v["health-port"]) || healthPort > 65535) throw new UsageError(`--health-port is a port number (got '${v["health-port"]}')`);
  }

  const timing: Timing = { ...DEFAULT_TIMING };
  if (v.timeout !== undefined) timing.requestTimeoutMs = seconds("--timeout", v.timeout, { min: 1 }) * 1000;
  if (v["refresh-before"] !== undefined) {
    timing.refreshBeforeMs = seconds("--refresh-before", v["refresh-before"]) * 1000;
    timing.minIntervalMs = 1000;
  }
  if (v["retry-delay"] !== undefined) timing.retryBaseMs = Math.max(10, seconds("--retry-delay", v["retry-delay"]) * 1000);

  return { spec, output: v.output, watch: Boolean(v.watch), healthPort, brokered, timing };
}

/** Test seams: time, a stop signal instead of process signals, a fetch. */
export interface GitHubTokenDeps {
  clock?: Clock;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** Called once the health server listens (its port, useful with --health-port 0). */
  onHealthListening?: (port: number) => void;
}

export async function runGitHubToken(args: string[], config: Config, io: CliIo, deps: GitHubTokenDeps = {}): Promise<number> {
  const options = parseGitHubTokenArgs(args);
  const clock = deps.clock ?? systemClock;
  const mode = options.brokered ? "brokered" : "direct";
  const log = jsonLog(io.err, { app: options.spec.app, mode }, clock);

  const problem = await outputProblem(options.output);
  if (problem) {
    log("error", problem, { kind: "config" });
    return 2;
  }
  const stale = await removeStaleTemporaries(options.output);
  if (stale) log("warn", "removed temporary files an interrupted run left", { count: stale, output: options.output });

  let source: TokenSource;
  try {
    source = options.brokered
      ? brokeredSource({ ...options.brokered, spec: options.spec, fetch: deps.fetch })
      : await directSource(config, options, io, options.timing.requestTimeoutMs);
  } catch (error) {
    if (error instanceof TokenSourceError || error instanceof ConfigError) {
      log("error", error.message, { kind: "config" });
      return 2;
    }
    throw error;
  }

  const stop = new AbortController();
  const onSignal = (name: string) => () => {
    log("info", `${name} received, stopping`);
    stop.abort();
  };
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  if (deps.signal) {
    if (deps.signal.aborted) stop.abort();
    else deps.signal.addEventListener("abort", () => stop.abort(), { once: true });
  } else if (options.watch) {
    // An initContainer keeps the default signal behaviour; a sidecar stops cleanly (exit 0).
    for (const name of ["SIGTERM", "SIGINT"] as const) {
      const handler = onSignal(name);
      handlers.push([name, handler]);
      process.on(name, handler);
    }
  }

  const state: WriterState = {};
  let healthServer: HealthServer | undefined;
  try {
    if (options.healthPort !== undefined) {
      try {
        healthServer = await startHealthServer({ port: options.healthPort, output: options.output, state, clock, timing: options.timing });
      } catch (error) {
        log("error", `cannot serve /healthz on port ${options.healthPort} (${(error as NodeJS.ErrnoException).code ?? "error"})`, { kind: "config" });
        return 2;
      }
      log("info", "serving /healthz", { port: healthServer.port });
      deps.onHealthListening?.(healthServer.port);
    }
    const run = { source, output: options.output, state, log, clock, timing: options.timing, signal: stop.signal };
    if (!options.watch) return await runOnce(run);
    log("info", "watching", { output: options.output });
    return await runWatch(run);
  } finally {
    for (const [name, handler] of handlers) process.off(name, handler);
    await healthServer?.close();
    await source.close();
  }
}

/** Direct mode: the named app from the server's configuration (env or mounted files), its GitHub client. */
async function directSource(config: Config, options: GitHubTokenOptions, io: CliIo, timeoutMs: number): Promise<TokenSource> {
  const [{ createGitHubApps }, { createMetrics }] = await Promise.all([import("../github/githubApps.ts"), import("../metrics.ts")]);
  const name = options.spec.app;
  // The client's own log lines (retries, rate limits) go to stderr as JSON too, at warn and above.
  const logger = createLogger({ level: config.logLevel === "info" ? "warn" : config.logLevel, destination: { write: (s: string) => io.err(s) } });
  const apps = createGitHubApps(
    { ...config.githubApps, env: onlyApp(config.githubApps.env, name), timeoutMs: Math.min(config.githubApps.timeoutMs, timeoutMs) },
    // A sidecar picks up a rotated mounted key as the server does; a one-shot run does not watch files.
    { logger, metrics: createMetrics(), watch: options.watch },
  );
  const client = apps.client(name);
  if (!client) {
    const known = apps.registry.names();
    await apps.close();
    throw new TokenSourceError(
      "config",
      `GitHub App ${name} is not configured: set GITHUB_APP_${name.toUpperCase().replace(/-/g, "_")}_ID and GITHUB_APP_${name.toUpperCase().replace(/-/g, "_")}_PRIVATE_KEY, or mount GITHUB_APPS_DIR/${name}/` +
        (known.length ? ` (configured: ${known.join(", ")})` : ""),
    );
  }
  // A key in an HSM or KMS is found and tried before the first token is asked for: a wrong key id,
  // PIN or permission is a configuration error (exit 2), named with the app.
  try {
    await apps.ready;
  } catch (error) {
    await apps.close();
    throw error instanceof ConfigError ? error : new TokenSourceError("config", error instanceof Error ? error.message : String(error));
  }
  const { spec } = options;
  // As Keyplane does: --repository owner/name also limits the token to that repository, with any --repositories.
  const named = [...(spec.repository ? [spec.repository.split("/")[1]!] : []), ...(spec.repositories ?? [])];
  const repositories = named.length ? named.filter((r, i) => named.findIndex((x) => x.toLowerCase() === r.toLowerCase()) === i) : undefined;
  return {
    mode: "direct",
    close: () => apps.close(),
    async issue(deadline) {
      try {
        const installationId = await client.resolveInstallation(
          { installationId: spec.installationId, owner: spec.owner, repository: spec.repository },
          deadline,
        );
        const minted = await client.mint({ installationId, repositories, permissions: spec.permissions, deadline });
        return {
          token: minted.token,
          expiresAt: minted.expiresAt,
          installationId: minted.installationId,
          repositories: minted.repositories,
          permissions: minted.permissions,
          fingerprint: fingerprint(minted.token),
        };
      } catch (error) {
        throw classifyGitHubError(error);
      }
    },
  };
}

/**
 * Only the variables of the app asked for: GITHUB_APP_<NAME>_<FIELD>, and the unnamed GITHUB_APP_<FIELD>
 * when GITHUB_APP_NAME (default "default") is that app. Another app's broken settings are not this
 * workload's problem. (Apps mounted in GITHUB_APPS_DIR are all read: the operator mounted them here.)
 */
export function onlyApp(env: Record<string, string>, name: string): Record<string, string> {
  const prefix = `GITHUB_APP_${name.toUpperCase().replace(/-/g, "_")}_`;
  const unnamedIsIt = (env.GITHUB_APP_NAME?.trim() || "default") === name;
  return Object.fromEntries(
    Object.entries(env).filter(([variable]) => {
      if (variable.startsWith(prefix) && GITHUB_APP_ENV_SUFFIXES.includes(variable.slice(prefix.length))) return true;
      const rest = variable.slice("GITHUB_APP_".length);
      return unnamedIsIt && variable.startsWith("GITHUB_APP_") && (GITHUB_APP_ENV_SUFFIXES.includes(rest) || rest === "NAME");
    }),
  );
}
