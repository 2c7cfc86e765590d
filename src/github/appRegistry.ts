import { createHash, type KeyObject } from "node:crypto";
import { readFileSync, readdirSync, statSync, watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../config.ts";
import { createLogger, type Logger } from "../logger.ts";
import { parsePrivateKey, publicKeyFingerprint } from "./privateKey.ts";
import type { GitHubApp, GitHubAppRegistry } from "./types.ts";

// The named GitHub Apps (rex, clippy, qa, …), read from GITHUB_APP_<NAME>_* variables, from the unnamed
// GITHUB_APP_* variables (one app named GITHUB_APP_NAME, default "default") and/or from a directory of
// mounted secrets, GITHUB_APPS_DIR/<name>/{appId,privateKey,webhookSecret,slug?,clientId?,clientSecret?}
// (what External Secrets or a Kubernetes Secret volume produce).
//
// Private keys become KeyObjects at once (privateKey.ts); the buffers that held the PEM are zeroed.
// Nothing here ever prints key material: problems are named ("not an RSA key", "truncated PEM"), never
// quoted.
//
// Mounted files are re-read while Keyplane runs: Kubernetes swaps a Secret volume by re-pointing the
// `..data` symlink, which fs.watch often misses, so the files are polled (content hash, every
// GITHUB_APPS_POLL_SECONDS) and fs.watch only hints that a look is due. A rotation that does not parse
// keeps the previous app and logs an error naming the app and the problem.

/** App names: lower-case letters, digits and inner dashes (`rex`, `triage-bot`). */
export const GITHUB_APP_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** A configured app that cannot be used, named with the problem (never the key). Stops Keyplane at start. */
export class GitHubAppConfigError extends ConfigError {
  constructor(
    readonly app: string | undefined,
    readonly problem: string,
  ) {
    super(app ? `invalid configuration: GitHub App ${app}: ${problem}` : `invalid configuration: ${problem}`);
    this.name = "GitHubAppConfigError";
  }
}

export interface GitHubAppSource {
  /** GITHUB_APP_* variables (others are ignored). */
  env?: Record<string, string | undefined>;
  /** GITHUB_APPS_DIR */
  dir?: string;
  /** How often mounted files are re-read; default 5. */
  pollSeconds?: number;
}

export interface LoadGitHubAppsOptions {
  logger?: Logger;
  /** Re-read mounted files when they change (poll + fs.watch). Default true. */
  watch?: boolean;
}

/** The registry loadGitHubApps returns: a GitHubAppRegistry that can also be asked to look at its files now. */
export interface WatchedGitHubAppRegistry extends GitHubAppRegistry {
  /** Re-reads the mounted files at once (what each poll does); resolves when every changed app is handled. */
  check(): Promise<void>;
}

type Field = "appId" | "privateKey" | "webhookSecret" | "slug" | "clientId" | "clientSecret";

// Longest suffix first: GITHUB_APP_REX_CLIENT_ID is rex's CLIENT_ID, not an app "rex-client"'s ID.
const ENV_FIELDS: ReadonlyArray<readonly [string, Field]> = [
  ["CLIENT_SECRET", "clientSecret"],
  ["CLIENT_ID", "clientId"],
  ["PRIVATE_KEY", "privateKey"],
  ["WEBHOOK_SECRET", "webhookSecret"],
  ["SLUG", "slug"],
  ["ID", "appId"],
];
const FILES: Record<Field, string> = {
  appId: "appId",
  privateKey: "privateKey",
  webhookSecret: "webhookSecret",
  slug: "slug",
  clientId: "clientId",
  clientSecret: "clientSecret",
};
const REQUIRED_FILES: Field[] = ["appId", "privateKey", "webhookSecret"];
const PREFIX = "GITHUB_APP_";

type Material = Partial<Record<Field, Buffer | string>>;

/**
 * Reads, validates and (for mounted files) watches the named GitHub Apps. Throws GitHubAppConfigError
 * naming the app and the problem when one is incomplete or its key unusable.
 */
export function loadGitHubApps(source: GitHubAppSource, options: LoadGitHubAppsOptions = {}): WatchedGitHubAppRegistry {
  const logger = options.logger ?? createLogger({ level: "silent" });
  const apps = new Map<string, GitHubApp>();

  for (const [name, { material, unnamed }] of envApps(source.env ?? {}, logger)) {
    apps.set(
      name,
      buildApp(name, material, (field) => envName(unnamed ? undefined : name, field)),
    );
  }

  const watched = new Map<string, WatchedApp>();
  if (source.dir) {
    for (const name of appDirs(source.dir, logger)) {
      if (apps.has(name)) throw new GitHubAppConfigError(name, `configured both by GITHUB_APP_* variables and in GITHUB_APPS_DIR (${source.dir}); keep one`);
      const appDir = path.join(source.dir, name);
      const snapshot = readSnapshotSync(name, appDir);
      try {
        apps.set(
          name,
          buildApp(name, snapshot.material, (field) => path.join(appDir, FILES[field]), REQUIRED_FILES),
        );
      } finally {
        wipe(snapshot.material);
      }
      watched.set(name, { dir: appDir, hash: snapshot.hash, rejectedHash: undefined });
    }
  }

  const listeners: Array<(app: GitHubApp) => void> = [];
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let hintTimer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  async function checkApp(name: string, state: WatchedApp): Promise<void> {
    const snapshot = await readSnapshot(state.dir);
    try {
      if (snapshot.hash === state.hash || snapshot.hash === state.rejectedHash) return;
      // Files written one by one (not a Kubernetes swap) may be caught half-way: they are used once
      // two reads in a row agree.
      const second = await readSnapshot(state.dir);
      wipe(second.material);
      if (second.hash !== snapshot.hash) {
        again = true;
        return;
      }
      let app: GitHubApp;
      try {
        app = buildApp(name, snapshot.material, (field) => path.join(state.dir, FILES[field]), REQUIRED_FILES);
      } catch (error) {
        state.rejectedHash = snapshot.hash;
        const problem = error instanceof GitHubAppConfigError ? error.problem : "could not be read";
        logger.error({ app: name, problem }, `GitHub App ${name}: changed files are unusable (${problem}); keeping the previous values`);
        return;
      }
      apps.set(name, app);
      state.hash = snapshot.hash;
      state.rejectedHash = undefined;
      logger.info(
        { app: name, appId: app.appId, keyFingerprint: publicKeyFingerprint(app.privateKey) },
        `GitHub App ${name}: files changed; the new values are in use`,
      );
      for (const listener of listeners) {
        try {
          listener(app);
        } catch (error) {
          logger.error({ app: name, error: error instanceof Error ? error.message : String(error) }, `GitHub App ${name}: a change listener failed`);
        }
      }
    } finally {
      wipe(snapshot.material);
    }
  }

  function check(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        for (const [name, state] of watched) {
          if (closed) return;
          try {
            await checkApp(name, state);
          } catch (error) {
            logger.error({ app: name, error: errorCode(error) }, `GitHub App ${name}: could not re-read its files`);
          }
        }
      } while (again && !closed);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  if (watched.size && options.watch !== false) {
    const pollMs = Math.max(10, Math.round((source.pollSeconds ?? 5) * 1000));
    timer = setInterval(() => void check(), pollMs);
    timer.unref();
    const hint = () => {
      if (closed || hintTimer) return;
      hintTimer = setTimeout(() => {
        hintTimer = undefined;
        void check();
      }, 50);
      hintTimer.unref();
    };
    for (const dir of [source.dir!, ...[...watched.values()].map((w) => w.dir)]) {
      try {
        const watcher = watch(dir, { persistent: false }, hint);
        watcher.on("error", () => watcher.close());
        watchers.push(watcher);
      } catch {
        // Some filesystems cannot be watched: the poll still runs.
      }
    }
  }

  return {
    names: () => [...apps.keys()].sort(),
    get: (name) => apps.get(name),
    byAppId: (appId) => [...apps.values()].find((app) => app.appId === String(appId)),
    onChange(listener) {
      listeners.push(listener);
    },
    check,
    close() {
      closed = true;
      if (timer) clearInterval(timer);
      if (hintTimer) clearTimeout(hintTimer);
      for (const watcher of watchers) watcher.close();
      watchers.length = 0;
    },
  };
}

interface WatchedApp {
  dir: string;
  /** Hash of the files last used. */
  hash: string;
  /** Hash of files that failed to parse (logged once, not on every poll). */
  rejectedHash: string | undefined;
}

// ---- environment ----

function envApps(env: Record<string, string | undefined>, logger: Logger): Map<string, { material: Material; unnamed: boolean }> {
  const named = new Map<string, { material: Material; unnamed: boolean }>();
  const unnamed: Material = {};
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith(PREFIX) || value === undefined || value === "") continue;
    const rest = variable.slice(PREFIX.length);
    if (rest === "NAME") continue;
    const exact = ENV_FIELDS.find(([suffix]) => rest === suffix);
    if (exact) {
      unnamed[exact[1]] = value;
      continue;
    }
    const field = ENV_FIELDS.find(([suffix]) => rest.endsWith(`_${suffix}`));
    const upper = field ? rest.slice(0, -(field[0].length + 1)) : "";
    if (!field || !/^[A-Z0-9]+(_[A-Z0-9]+)*$/.test(upper)) {
      logger.warn(
        { variable },
        `${variable} is not a GitHub App setting (GITHUB_APP_<NAME>_ID, _PRIVATE_KEY, _WEBHOOK_SECRET, _SLUG, _CLIENT_ID, _CLIENT_SECRET); ignored`,
      );
      continue;
    }
    const name = upper.toLowerCase().replace(/_/g, "-");
    const entry = named.get(name) ?? { material: {}, unnamed: false };
    entry.material[field[1]] = value;
    named.set(name, entry);
  }
  // The unnamed variables make an app when they carry an id or a key: a webhook secret or an OAuth
  // client alone configured nothing before named apps existed, and still configures nothing.
  if (unnamed.appId !== undefined || unnamed.privateKey !== undefined) {
    const name = env.GITHUB_APP_NAME?.trim() || "default";
    if (!GITHUB_APP_NAME.test(name)) throw new GitHubAppConfigError(undefined, "GITHUB_APP_NAME must be lower-case letters, digits and dashes");
    if (named.has(name))
      throw new GitHubAppConfigError(
        name,
        `configured both by the unnamed GITHUB_APP_* variables (GITHUB_APP_NAME=${name}) and by GITHUB_APP_${envPart(name)}_*; keep one`,
      );
    named.set(name, { material: unnamed, unnamed: true });
  } else if (Object.keys(unnamed).length) {
    logger.warn({ variables: Object.keys(unnamed) }, "GITHUB_APP_* variables without GITHUB_APP_ID or GITHUB_APP_PRIVATE_KEY configure no app; ignored");
  }
  return named;
}

const envPart = (name: string) => name.toUpperCase().replace(/-/g, "_");

/** The variable that sets `field`: GITHUB_APP_REX_PRIVATE_KEY, or GITHUB_APP_PRIVATE_KEY for the unnamed app. */
function envName(name: string | undefined, field: Field): string {
  const suffix = ENV_FIELDS.find(([, f]) => f === field)![0];
  return name === undefined ? `${PREFIX}${suffix}` : `${PREFIX}${envPart(name)}_${suffix}`;
}

// ---- mounted files ----

function appDirs(dir: string, logger: Logger): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    throw new GitHubAppConfigError(undefined, `GITHUB_APPS_DIR ${dir} cannot be read (${errorCode(error)})`);
  }
  const names: string[] = [];
  for (const entry of entries.sort()) {
    if (entry.startsWith(".")) continue; // ..data, ..2024_01_01_…: Kubernetes' own
    let isDir = false;
    try {
      isDir = statSync(path.join(dir, entry)).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) continue;
    if (!GITHUB_APP_NAME.test(entry)) {
      logger.warn({ entry }, `GITHUB_APPS_DIR: ${entry} is not an app name (lower-case letters, digits and dashes); ignored`);
      continue;
    }
    names.push(entry);
  }
  return names;
}

interface Snapshot {
  hash: string;
  material: Material;
}

function readSnapshotSync(name: string, dir: string): Snapshot {
  const material: Material = {};
  for (const field of Object.keys(FILES) as Field[]) {
    try {
      material[field] = readFileSync(path.join(dir, FILES[field]));
    } catch (error) {
      if (errorCode(error) === "ENOENT") continue;
      wipe(material);
      throw new GitHubAppConfigError(name, `${path.join(dir, FILES[field])} cannot be read (${errorCode(error)})`);
    }
  }
  return { hash: hashOf(material), material };
}

async function readSnapshot(dir: string): Promise<Snapshot> {
  const material: Material = {};
  for (const field of Object.keys(FILES) as Field[]) {
    try {
      material[field] = await readFile(path.join(dir, FILES[field]));
    } catch (error) {
      // Missing (mid-swap, removed): the parse names it; unreadable: the same.
      if (errorCode(error) !== "ENOENT") material[field] = Buffer.alloc(0);
    }
  }
  return { hash: hashOf(material), material };
}

function hashOf(material: Material): string {
  const hash = createHash("sha256");
  for (const field of Object.keys(FILES) as Field[]) {
    const value = material[field];
    hash.update(`${field}:${value === undefined ? "-" : value.length}:`);
    if (value !== undefined) hash.update(value);
  }
  return hash.digest("hex");
}

function wipe(material: Material): void {
  for (const value of Object.values(material)) if (Buffer.isBuffer(value)) value.fill(0);
}

// ---- validation ----

const text = (value: Buffer | string | undefined): string | undefined => {
  if (value === undefined) return undefined;
  const s = (typeof value === "string" ? value : value.toString("utf8")).trim();
  return s === "" ? undefined : s;
};

function buildApp(name: string, material: Material, where: (field: Field) => string, required: Field[] = ["privateKey"]): GitHubApp {
  for (const field of required) {
    if (material[field] === undefined) throw new GitHubAppConfigError(name, `${where(field)} is missing`);
  }
  const appId = text(material.appId);
  const clientId = text(material.clientId);
  const issuer = appId ?? clientId;
  if (!issuer) {
    const hint =
      name === "client" || name.endsWith("-client")
        ? ` (an app named "${name}" cannot be configured by variables: GITHUB_APP_${envPart(name)}_ID reads as a client id; use GITHUB_APPS_DIR)`
        : "";
    throw new GitHubAppConfigError(name, `${where("appId")} (or ${where("clientId")}) is missing${hint}`);
  }
  if (appId !== undefined && !/^[0-9]{1,20}$/.test(appId) && !/^Iv[A-Za-z0-9.]{4,60}$/.test(appId)) {
    throw new GitHubAppConfigError(name, `${where("appId")} is not a GitHub App id (digits) or client id (Iv…)`);
  }
  if (clientId !== undefined && !/^[A-Za-z0-9._-]{1,100}$/.test(clientId)) throw new GitHubAppConfigError(name, `${where("clientId")} is not a client id`);
  const slug = text(material.slug);
  if (slug !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(slug)) throw new GitHubAppConfigError(name, `${where("slug")} is not an app slug`);
  const clientSecret = text(material.clientSecret);
  if (clientSecret !== undefined && clientId === undefined)
    throw new GitHubAppConfigError(name, `${where("clientSecret")} is set without ${where("clientId")}`);
  const webhookSecret = text(material.webhookSecret);
  if (material.webhookSecret !== undefined && webhookSecret === undefined) throw new GitHubAppConfigError(name, `${where("webhookSecret")} is empty`);

  const rawKey = material.privateKey;
  if (rawKey === undefined) throw new GitHubAppConfigError(name, `${where("privateKey")} is missing`);
  const keyBuffer = typeof rawKey === "string" ? Buffer.from(rawKey, "utf8") : rawKey;
  let privateKey: KeyObject;
  try {
    privateKey = parsePrivateKey(keyBuffer, (problem) => new GitHubAppConfigError(name, `${where("privateKey")} ${problem}`));
  } finally {
    // A Buffer made here from an env string is ours to zero (the string itself cannot be); a file's buffer is zeroed by the caller.
    if (typeof rawKey === "string") keyBuffer.fill(0);
  }
  return { name, appId: issuer, slug, privateKey, webhookSecret, clientId, clientSecret };
}

function errorCode(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : "error";
}
