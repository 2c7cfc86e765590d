import { createHash, type KeyObject } from "node:crypto";
import { readFileSync, readdirSync, statSync, watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../config.ts";
import { createLogger, type Logger } from "../logger.ts";
import { parsePrivateKey, publicKeyFingerprint } from "./privateKey.ts";
import { createSigner, type SignerOptions, type SignerSettings } from "./signers/createSigner.ts";
import { checkSigner, type JwtSigner, SIGNER_KINDS, type SignerKind } from "./signers/jwtSigner.ts";
import type { GitHubApp, GitHubAppRegistry } from "./types.ts";

// The named GitHub Apps (rex, clippy, qa, …), read from GITHUB_APP_<NAME>_* variables, from the unnamed
// GITHUB_APP_* variables (one app named GITHUB_APP_NAME, default "default") and/or from a directory of
// mounted secrets, GITHUB_APPS_DIR/<name>/{appId,privateKey,webhookSecret,slug?,clientId?,clientSecret?}
// (what External Secrets or a Kubernetes Secret volume produce).
//
// Each app has a signer (src/github/signers): `memory` (the default: the private key above), `pkcs11`
// (a key on a PKCS#11 token: module, token label or slot, PIN or PIN file, key label or id) or
// `aws-kms` (an AWS KMS key: key id or ARN, region, endpoint), chosen by GITHUB_APP_<NAME>_SIGNER or
// the file `signer`. With a key kept elsewhere the private key must be absent. Signers open nothing
// here: githubApps.ts checks them at start, and a rotated app's new signer is checked before use.
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
  /** Settings of the signers' clients (tests: the AWS SDK's credentials). */
  signers?: SignerOptions;
}

/** The registry loadGitHubApps returns: a GitHubAppRegistry that can also be asked to look at its files now. */
export interface WatchedGitHubAppRegistry extends GitHubAppRegistry {
  /** Re-reads the mounted files at once (what each poll does); resolves when every changed app is handled. */
  check(): Promise<void>;
  /** Stops watching files and closes every signer (PKCS#11 sessions, KMS clients) once its calls under way are done. */
  close(): Promise<void>;
}

type SignerField =
  | "signer"
  | "pkcs11Module"
  | "pkcs11TokenLabel"
  | "pkcs11Slot"
  | "pkcs11Pin"
  | "pkcs11PinFile"
  | "pkcs11KeyLabel"
  | "pkcs11KeyId"
  | "kmsKeyId"
  | "kmsRegion"
  | "kmsEndpoint";
type Field = "appId" | "privateKey" | "webhookSecret" | "slug" | "clientId" | "clientSecret" | SignerField;

// Matched longest suffix first: GITHUB_APP_REX_CLIENT_ID is rex's CLIENT_ID, not an app "rex-client"'s
// ID, and GITHUB_APP_REX_KMS_KEY_ID is rex's KMS key, not an app "rex-kms-key"'s ID. An app named `kms`
// or `pkcs11` is fine (GITHUB_APP_KMS_ID, GITHUB_APP_KMS_KMS_KEY_ID); only names that end in `client`,
// `kms-key` or `pkcs11-key` cannot have their id set by a variable (the error says so: use GITHUB_APPS_DIR).
const ENV_FIELDS: ReadonlyArray<readonly [string, Field]> = (
  [
    ["CLIENT_SECRET", "clientSecret"],
    ["CLIENT_ID", "clientId"],
    ["PRIVATE_KEY", "privateKey"],
    ["WEBHOOK_SECRET", "webhookSecret"],
    ["SLUG", "slug"],
    ["ID", "appId"],
    ["SIGNER", "signer"],
    ["PKCS11_MODULE", "pkcs11Module"],
    ["PKCS11_TOKEN_LABEL", "pkcs11TokenLabel"],
    ["PKCS11_SLOT", "pkcs11Slot"],
    ["PKCS11_PIN", "pkcs11Pin"],
    ["PKCS11_PIN_FILE", "pkcs11PinFile"],
    ["PKCS11_KEY_LABEL", "pkcs11KeyLabel"],
    ["PKCS11_KEY_ID", "pkcs11KeyId"],
    ["KMS_KEY_ID", "kmsKeyId"],
    ["KMS_REGION", "kmsRegion"],
    ["KMS_ENDPOINT", "kmsEndpoint"],
  ] as const
)
  .slice()
  .sort((a, b) => b[0].length - a[0].length);

/** Every GITHUB_APP_<NAME>_<SUFFIX> an app reads (the token writer keeps only these of the app it serves). */
export const GITHUB_APP_ENV_SUFFIXES: readonly string[] = ENV_FIELDS.map(([suffix]) => suffix);

// The mounted-directory form: GITHUB_APPS_DIR/<name>/<file>. (A PIN is the file pkcs11Pin itself there.)
const FILES: Partial<Record<Field, string>> = {
  appId: "appId",
  privateKey: "privateKey",
  webhookSecret: "webhookSecret",
  slug: "slug",
  clientId: "clientId",
  clientSecret: "clientSecret",
  signer: "signer",
  pkcs11Module: "pkcs11Module",
  pkcs11TokenLabel: "pkcs11TokenLabel",
  pkcs11Slot: "pkcs11Slot",
  pkcs11Pin: "pkcs11Pin",
  pkcs11KeyLabel: "pkcs11KeyLabel",
  pkcs11KeyId: "pkcs11KeyId",
  kmsKeyId: "kmsKeyId",
  kmsRegion: "kmsRegion",
  kmsEndpoint: "kmsEndpoint",
};
const FILE_FIELDS = Object.keys(FILES) as Field[];
// The private key too, unless the signer keeps it elsewhere (buildApp).
const REQUIRED_FILES: Field[] = ["appId", "webhookSecret"];
const PREFIX = "GITHUB_APP_";

type Material = Partial<Record<Field, Buffer | string>>;

/**
 * Reads, validates and (for mounted files) watches the named GitHub Apps. Throws GitHubAppConfigError
 * naming the app and the problem when one is incomplete or its key unusable.
 */
export function loadGitHubApps(source: GitHubAppSource, options: LoadGitHubAppsOptions = {}): WatchedGitHubAppRegistry {
  const logger = options.logger ?? createLogger({ level: "silent" });
  const apps = new Map<string, GitHubApp>();
  // The settings each signer was made from: a rotation that leaves them alone keeps the signer (and its session).
  const signerSettings = new WeakMap<JwtSigner, string>();
  // Signers replaced by a rotation, closing once their calls under way are done.
  const retiring = new Set<Promise<void>>();

  function withSigner(built: BuiltApp, previous?: GitHubApp): GitHubApp {
    const kept = previous?.signer && signerSettings.get(previous.signer) === built.settingsKey ? previous.signer : undefined;
    const signer = kept ?? createSigner(built.settings, options.signers);
    signerSettings.set(signer, built.settingsKey);
    return { ...built.app, signer };
  }

  function retire(signer: JwtSigner): void {
    const closing = signer.close().catch(() => {});
    retiring.add(closing);
    void closing.then(() => retiring.delete(closing));
  }

  for (const [name, { material, unnamed }] of envApps(source.env ?? {}, logger)) {
    apps.set(name, withSigner(buildApp(name, material, (field) => envName(unnamed ? undefined : name, field))));
  }

  const watched = new Map<string, WatchedApp>();
  if (source.dir) {
    for (const name of appDirs(source.dir, logger)) {
      if (apps.has(name)) throw new GitHubAppConfigError(name, `configured both by GITHUB_APP_* variables and in GITHUB_APPS_DIR (${source.dir}); keep one`);
      const appDir = path.join(source.dir, name);
      const snapshot = readSnapshotSync(name, appDir);
      try {
        apps.set(name, withSigner(buildApp(name, snapshot.material, (field) => fileOf(appDir, field), REQUIRED_FILES)));
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
      const previous = apps.get(name);
      let app: GitHubApp;
      let keyFingerprint: string | undefined;
      try {
        app = withSigner(
          buildApp(name, snapshot.material, (field) => fileOf(state.dir, field), REQUIRED_FILES),
          previous,
        );
        if (app.privateKey) keyFingerprint = publicKeyFingerprint(app.privateKey);
        else if (app.signer !== previous?.signer) {
          // A new HSM or KMS key (or PIN, or token) is checked before any JWT depends on it.
          try {
            keyFingerprint = (await checkSigner(app.signer!)).keyFingerprint;
          } catch (error) {
            void app.signer!.close().catch(() => {});
            throw new GitHubAppConfigError(name, error instanceof Error ? error.message : "its signer does not work");
          }
        }
      } catch (error) {
        state.rejectedHash = snapshot.hash;
        const problem = error instanceof GitHubAppConfigError ? error.problem : "could not be read";
        logger.error({ app: name, problem }, `GitHub App ${name}: changed files are unusable (${problem}); keeping the previous values`);
        return;
      }
      apps.set(name, app);
      if (previous?.signer && previous.signer !== app.signer) retire(previous.signer);
      state.hash = snapshot.hash;
      state.rejectedHash = undefined;
      logger.info(
        { app: name, appId: app.appId, signer: app.signer!.kind, ...(keyFingerprint ? { keyFingerprint } : {}) },
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
    async close() {
      const first = !closed;
      closed = true;
      if (timer) clearInterval(timer);
      if (hintTimer) clearTimeout(hintTimer);
      for (const watcher of watchers) watcher.close();
      watchers.length = 0;
      if (first) for (const app of apps.values()) if (app.signer) retire(app.signer);
      await Promise.all(retiring);
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
    const parsed = parseVariable(rest);
    if (!parsed) {
      logger.warn(
        { variable },
        `${variable} is not a GitHub App setting (GITHUB_APP_<NAME>_ID, _PRIVATE_KEY, _WEBHOOK_SECRET, _SLUG, _CLIENT_ID, _CLIENT_SECRET, _SIGNER, _PKCS11_*, _KMS_*); ignored`,
      );
      continue;
    }
    if (parsed.name === undefined) {
      unnamed[parsed.field] = value;
      continue;
    }
    const entry = named.get(parsed.name) ?? { material: {}, unnamed: false };
    entry.material[parsed.field] = value;
    named.set(parsed.name, entry);
  }
  // The unnamed variables make an app when they carry an id, a key or a signer: a webhook secret or an
  // OAuth client alone configured nothing before named apps existed, and still configures nothing.
  if (unnamed.appId !== undefined || unnamed.privateKey !== undefined || unnamed.signer !== undefined) {
    const name = env.GITHUB_APP_NAME?.trim() || "default";
    if (!GITHUB_APP_NAME.test(name)) throw new GitHubAppConfigError(undefined, "GITHUB_APP_NAME must be lower-case letters, digits and dashes");
    if (named.has(name))
      throw new GitHubAppConfigError(
        name,
        `configured both by the unnamed GITHUB_APP_* variables (GITHUB_APP_NAME=${name}) and by GITHUB_APP_${envPart(name)}_*; keep one`,
      );
    named.set(name, { material: unnamed, unnamed: true });
  } else if (Object.keys(unnamed).length) {
    logger.warn(
      { variables: Object.keys(unnamed) },
      "GITHUB_APP_* variables without GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY or GITHUB_APP_SIGNER configure no app; ignored",
    );
  }
  return named;
}

/**
 * GITHUB_APP_<rest>: the unnamed app's setting when `rest` is a suffix itself (CLIENT_ID, KMS_KEY_ID),
 * else <NAME>_<suffix> with the longest suffix that fits; undefined when neither.
 */
function parseVariable(rest: string): { name?: string; field: Field } | undefined {
  const exact = ENV_FIELDS.find(([suffix]) => rest === suffix);
  if (exact) return { field: exact[1] };
  const field = ENV_FIELDS.find(([suffix]) => rest.endsWith(`_${suffix}`));
  const upper = field ? rest.slice(0, -(field[0].length + 1)) : "";
  if (!field || !/^[A-Z0-9]+(_[A-Z0-9]+)*$/.test(upper)) return undefined;
  return { name: upper.toLowerCase().replace(/_/g, "-"), field: field[1] };
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
  for (const field of FILE_FIELDS) {
    try {
      material[field] = readFileSync(fileOf(dir, field));
    } catch (error) {
      if (errorCode(error) === "ENOENT") continue;
      wipe(material);
      throw new GitHubAppConfigError(name, `${fileOf(dir, field)} cannot be read (${errorCode(error)})`);
    }
  }
  return { hash: hashOf(material), material };
}

async function readSnapshot(dir: string): Promise<Snapshot> {
  const material: Material = {};
  for (const field of FILE_FIELDS) {
    try {
      material[field] = await readFile(fileOf(dir, field));
    } catch (error) {
      // Missing (mid-swap, removed): the parse names it; unreadable: the same.
      if (errorCode(error) !== "ENOENT") material[field] = Buffer.alloc(0);
    }
  }
  return { hash: hashOf(material), material };
}

function hashOf(material: Material): string {
  const hash = createHash("sha256");
  for (const field of FILE_FIELDS) {
    const value = material[field];
    hash.update(`${field}:${value === undefined ? "-" : value.length}:`);
    if (value !== undefined) hash.update(value);
  }
  return hash.digest("hex");
}

/** The mounted file of `field`, or for a field that has none (pkcs11PinFile), what names it. */
function fileOf(dir: string, field: Field): string {
  const file = FILES[field];
  return file ? path.join(dir, file) : `${field} (a variable only: mount the PIN as ${path.join(dir, "pkcs11Pin")})`;
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

interface BuiltApp {
  app: Omit<GitHubApp, "signer">;
  settings: SignerSettings;
  /** The signer's settings (the PIN as a hash): equal keys share one signer across a rotation. */
  settingsKey: string;
}

const PKCS11_FIELDS: SignerField[] = ["pkcs11Module", "pkcs11TokenLabel", "pkcs11Slot", "pkcs11Pin", "pkcs11PinFile", "pkcs11KeyLabel", "pkcs11KeyId"];
const KMS_FIELDS: SignerField[] = ["kmsKeyId", "kmsRegion", "kmsEndpoint"];

function buildApp(name: string, material: Material, where: (field: Field) => string, required: Field[] = []): BuiltApp {
  for (const field of required) {
    if (material[field] === undefined) throw new GitHubAppConfigError(name, `${where(field)} is missing`);
  }
  const appId = text(material.appId);
  const clientId = text(material.clientId);
  const issuer = appId ?? clientId;
  if (!issuer) {
    // GITHUB_APP_<NAME>_ID reads as another setting for names ending in client, kms-key or pkcs11-key.
    const parsed = parseVariable(`${envPart(name)}_ID`);
    const hint =
      parsed?.name !== name || parsed.field !== "appId"
        ? ` (an app named "${name}" cannot be configured by variables: GITHUB_APP_${envPart(name)}_ID reads as ${parsed?.name === undefined ? "the unnamed app's" : `app ${parsed.name}'s`} ${ENV_FIELDS.find(([, f]) => f === parsed?.field)?.[0] ?? "setting"}; use GITHUB_APPS_DIR)`
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

  const kind = (text(material.signer) ?? "memory") as SignerKind;
  if (!SIGNER_KINDS.includes(kind))
    throw new GitHubAppConfigError(name, `${where("signer")} is "${kind.slice(0, 40)}": the signer is memory (the default), pkcs11 or aws-kms`);
  const fail = (problem: string) => new GitHubAppConfigError(name, problem);
  // Settings of another signer are a mistake to point out, not to ignore.
  const foreign = [...(kind === "pkcs11" ? [] : PKCS11_FIELDS), ...(kind === "aws-kms" ? [] : KMS_FIELDS)].filter((f) => material[f] !== undefined);
  if (foreign.length) throw fail(`${where(foreign[0]!)} is set but the signer is ${kind}${kind === "memory" ? ` (set ${where("signer")})` : ""}`);

  const base = { name, appId: issuer, slug, webhookSecret, clientId, clientSecret };
  if (kind !== "memory") {
    if (material.privateKey !== undefined)
      throw fail(`${where("privateKey")} is set but the signer is ${kind}: the key stays in the ${kind === "pkcs11" ? "HSM" : "KMS"}; remove the private key`);
    const settings = kind === "pkcs11" ? pkcs11Settings(material, where, fail) : kmsSettings(material, where, fail);
    const { pin, ...shown } = settings as SignerSettings & { pin?: string };
    const settingsKey = JSON.stringify({ ...shown, pin: pin === undefined ? undefined : createHash("sha256").update(pin).digest("hex") });
    return { app: base, settings, settingsKey };
  }

  const rawKey = material.privateKey;
  if (rawKey === undefined) throw fail(`${where("privateKey")} is missing`);
  const keyBuffer = typeof rawKey === "string" ? Buffer.from(rawKey, "utf8") : rawKey;
  let privateKey: KeyObject;
  try {
    privateKey = parsePrivateKey(keyBuffer, (problem) => fail(`${where("privateKey")} ${problem}`));
  } finally {
    // A Buffer made here from an env string is ours to zero (the string itself cannot be); a file's buffer is zeroed by the caller.
    if (typeof rawKey === "string") keyBuffer.fill(0);
  }
  return { app: { ...base, privateKey }, settings: { kind: "memory", privateKey }, settingsKey: `memory:${publicKeyFingerprint(privateKey)}` };
}

function pkcs11Settings(material: Material, where: (field: Field) => string, fail: (problem: string) => Error): SignerSettings {
  const module = text(material.pkcs11Module);
  if (!module) throw fail(`${where("pkcs11Module")} is missing (the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)`);
  if (!path.isAbsolute(module)) throw fail(`${where("pkcs11Module")} must be an absolute path`);
  const tokenLabel = text(material.pkcs11TokenLabel);
  const slotText = text(material.pkcs11Slot);
  if (tokenLabel === undefined && slotText === undefined) throw fail(`${where("pkcs11TokenLabel")} (or ${where("pkcs11Slot")}) is missing`);
  if (tokenLabel !== undefined && slotText !== undefined) throw fail(`${where("pkcs11TokenLabel")} and ${where("pkcs11Slot")} are both set; keep one`);
  if (slotText !== undefined && !/^[0-9]{1,15}$/.test(slotText)) throw fail(`${where("pkcs11Slot")} is not a slot number`);
  if (material.pkcs11Pin !== undefined && material.pkcs11PinFile !== undefined)
    throw fail(`${where("pkcs11Pin")} and ${where("pkcs11PinFile")} are both set; keep one`);
  let pin = text(material.pkcs11Pin);
  const pinFile = text(material.pkcs11PinFile);
  if (pinFile !== undefined) {
    let buffer: Buffer;
    try {
      buffer = readFileSync(pinFile);
    } catch (error) {
      throw fail(`${where("pkcs11PinFile")} (${pinFile}) cannot be read (${errorCode(error)})`);
    }
    pin = text(buffer);
    buffer.fill(0);
    if (pin === undefined) throw fail(`${where("pkcs11PinFile")} (${pinFile}) is empty`);
  }
  if (pin === undefined) throw fail(`${where("pkcs11Pin")} (or ${where("pkcs11PinFile")}) is missing: the token's user PIN`);
  const keyLabel = text(material.pkcs11KeyLabel);
  const keyId = text(material.pkcs11KeyId)?.replace(/^0x/i, "").replace(/:/g, "").toLowerCase();
  if (keyLabel === undefined && keyId === undefined) throw fail(`${where("pkcs11KeyLabel")} (or ${where("pkcs11KeyId")}) is missing: which key on the token`);
  if (keyId !== undefined && !/^([0-9a-f]{2})+$/.test(keyId)) throw fail(`${where("pkcs11KeyId")} is not a key id in hex (CKA_ID, e.g. 01 or a1b2)`);
  return { kind: "pkcs11", module, tokenLabel, slot: slotText === undefined ? undefined : Number(slotText), pin, keyLabel, keyId };
}

function kmsSettings(material: Material, where: (field: Field) => string, fail: (problem: string) => Error): SignerSettings {
  const keyId = text(material.kmsKeyId);
  if (!keyId) throw fail(`${where("kmsKeyId")} is missing (the key's id, ARN or alias)`);
  if (!/^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)\/[A-Za-z0-9/_-]+|alias\/[A-Za-z0-9/_-]+|(mrk-)?[0-9a-f-]{32,36})$/.test(keyId))
    throw fail(`${where("kmsKeyId")} is not a KMS key id, key ARN, alias (alias/…) or alias ARN`);
  const region = text(material.kmsRegion);
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-[0-9]+$/.test(region)) throw fail(`${where("kmsRegion")} is not an AWS region (e.g. eu-west-1)`);
  const endpoint = text(material.kmsEndpoint);
  if (endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) throw fail(`${where("kmsEndpoint")} is not an http(s) URL`);
  }
  return { kind: "aws-kms", keyId, region, endpoint };
}

function errorCode(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : "error";
}
