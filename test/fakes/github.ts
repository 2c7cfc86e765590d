import { createHash, createHmac, generateKeyPair as generateKeyPairCallback, randomUUID, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { compactVerify, decodeJwt, decodeProtectedHeader } from "jose";
import {
  authorization,
  basicCredentials,
  bodyFields,
  createClock,
  htmlPage,
  randomString,
  secret,
  startFakeServer,
  withQuery,
  type FakeRequest,
  type FakeResponse,
  type RequestLogEntry,
} from "./fakeServer.ts";

/**
 * A local fake of GitHub for GitHub Apps: one origin serves the browser pages (app install) and the
 * REST API, so Keyplane is configured with GITHUB_URL = GITHUB_API_URL = fake.url.
 *
 * It checks what GitHub checks: RS256 app JWTs signed with the app's key whose `exp` is at most 10
 * minutes ahead of GitHub's clock and not past, and whose `iat` is not in the future (no leeway:
 * GitHub allows none); installation tokens that expire after an hour, die when revoked or when the
 * installation is deleted, and are refused (403) while it is suspended; token requests that ask for
 * more than the installation has (422). Error bodies and messages are GitHub's, including the three
 * JWT time messages that @octokit/auth-app matches to retry with the clock difference taken from
 * the `Date` header, which the fake sets from its own (skewable) clock.
 *
 * User authorization (user-to-server tokens): GET /login/oauth/authorize signs in whoever the test
 * chose (`signInAs`, default "octocat") and redirects to the redirect_uri with a 10-minute, single-use
 * code; with PKCE (only S256) the code remembers its challenge and the exchange needs the matching
 * `code_verifier` (else bad_verification_code; a failed attempt does not consume the code). ghu_
 * tokens live 8 h and come with a ghr_ refresh token (about 6 months) that works once. DELETE
 * /applications/{client_id}/grant (Basic client_id:client_secret; 404 for wrong credentials as
 * GitHub) kills every token and refresh token of that user for the app; .../token only that token.
 *
 * Repositories with content (`createRepository`, forks): branches point at commits, commits hold a
 * tree (path -> blob, blob shas computed as git does). A token acts as its owner, and is judged as
 * GitHub judges it:
 * - installation token (ghs_): only repositories of its installation (narrowed to the token's own
 *   list, if any) with the token's permissions; `metadata: read` is implicit. A private repository
 *   outside it is 404; a public one can be read (GitHub lets any token read public resources) but not
 *   written (403). A permission missing or too low is 403 "Resource not accessible by integration".
 *   Objects it creates belong to `<app-slug>[bot]`. It can fork only into its own organization
 *   (`organization` = the installation's account) with `administration: write` and `contents: read`.
 * - user-to-server token (ghu_): the intersection of the user and the app. The user needs access to
 *   the repository (owner, a grant by `grantRepositoryAccess`, or read on a public one), else 404; a
 *   write needs the user's write (else 404, as GitHub hides what one cannot push to). The app needs an
 *   installation (live, not suspended) on the repository owner's account covering the repository,
 *   with the permission (403 if missing or too low; a private repository without one is 404). Reads
 *   of a public repository need no installation. Forking needs the source readable and lands in the
 *   user's account (or `organization`, which must have an installation the user can see), which needs
 *   an installation of the app with `administration: write` and `contents: read`; the fork is added
 *   to that installation's repositories. Opening a pull request on the base repository needs the user
 *   to read it (any user may open one on a public repository) and the app `pull_requests: write`
 *   through an installation covering the base repository; the head must be readable.
 * - no token: reads of public repositories only (401 "Requires authentication" for the rest).
 * Only repositories made by `createRepository` or forked exist under /repos/{owner}/{repo}; the names
 * in installations without one stay names (404 there).
 */

const GENERATE_KEY_PAIR = promisify(generateKeyPairCallback);

export type GitHubPermissionLevel = "read" | "write" | "admin";
export type GitHubPermissions = Record<string, GitHubPermissionLevel>;

export interface GitHubAccount {
  login: string;
  id: number;
  node_id: string;
  avatar_url: string;
  url: string;
  html_url: string;
  type: "Organization" | "User" | "Bot";
  site_admin: false;
}

export interface GitHubRepository {
  id: number;
  node_id: string;
  name: string;
  full_name: string;
  private: boolean;
  owner: GitHubAccount;
  html_url: string;
  url: string;
  default_branch: string;
}

/** GitHub's installation object (GET /app/installations/:id). */
export interface GitHubInstallation {
  id: number;
  account: GitHubAccount;
  repository_selection: "all" | "selected";
  access_tokens_url: string;
  repositories_url: string;
  html_url: string;
  app_id: number;
  app_slug: string;
  client_id: string;
  target_id: number;
  target_type: "Organization" | "User";
  permissions: GitHubPermissions;
  events: string[];
  single_file_name: null;
  has_multiple_single_files: false;
  single_file_paths: string[];
  created_at: string;
  updated_at: string;
  suspended_at: string | null;
  suspended_by: GitHubAccount | null;
}

export interface FakeGitHubApp {
  appId: number;
  slug: string;
  /** PEM of the app's RSA 2048 private key: PKCS#1 ("BEGIN RSA PRIVATE KEY", what GitHub hands out) unless privateKeyFormat "pkcs8". */
  privateKeyPem: string;
  clientId: string;
  clientSecret: string;
  webhookSecret: string;
}

export interface CreateAppOptions {
  slug: string;
  /** Where the install flow redirects (GitHub's "Setup URL"). Without it the flow ends on a GitHub page (200). */
  setupUrl?: string;
  clientId?: string;
  clientSecret?: string;
  webhookSecret?: string;
  name?: string;
  /** Default "pkcs1", as GitHub's downloaded keys; "pkcs8" gives "BEGIN PRIVATE KEY". */
  privateKeyFormat?: "pkcs1" | "pkcs8";
  /** "Request user authorization (OAuth) during installation": the setup redirect carries `code`. Default true. */
  requestOAuthOnInstall?: boolean;
  /** User-to-server tokens expire (8 h, with a ghr_ refresh token), GitHub's default. Default true. */
  expiringUserTokens?: boolean;
  /**
   * The app's registered Callback URLs. When set, a redirect_uri sent to POST /login/oauth/access_token
   * must equal one of them or lie under one (same origin, path below), else GitHub's redirect_uri_mismatch.
   * When unset, redirect_uri is not checked.
   */
  callbackUrls?: string[];
  /** The app's registered permissions, shown by GET /app. */
  permissions?: GitHubPermissions;
  events?: string[];
}

export interface AddInstallationOptions {
  appId: number;
  account: { login: string; type: "Organization" | "User" };
  /** Repository names (the owner is the account). For "all", the account's whole set of repositories. */
  repositories: string[];
  permissions: GitHubPermissions;
  repositorySelection?: "all" | "selected";
  events?: string[];
  /** Login of the user who installs it; they can see it through GET /user/installations. Default: the account for a User, `${login}-admin` for an Organization. */
  installedBy?: string;
}

export type NextInstallOptions = Omit<AddInstallationOptions, "appId">;

export interface IssuedInstallationToken {
  token: string;
  installationId: number;
  /** ISO time without milliseconds, as in the API response. */
  expiresAt: string;
  permissions: GitHubPermissions;
  /** Repository names the token is limited to, or null for all the installation's repositories. */
  repositories: string[] | null;
  revoked: boolean;
}

export interface DeliverWebhookOptions {
  event: string;
  payload: unknown;
  /** HMAC key; defaults to the app's webhookSecret. */
  secret?: string;
  deliveryId?: string;
  /** The app the hook belongs to; defaults to payload.installation.app_id, then to the only app. */
  appId?: number;
  /** Replaces the X-Hub-Signature-256 header; null omits it (and X-Hub-Signature). */
  signature?: string | null;
}

export interface CreateRepositoryOptions {
  owner: string;
  name: string;
  /** Used when the account is new to the fake; default "Organization" (an existing account keeps its type). */
  ownerType?: "Organization" | "User";
  /** Default false (GitHub's default for a new repository). */
  private?: boolean;
  /** Files of the initial commit on the default branch, path -> UTF-8 content. Default { "README.md": "# <name>\n" }. */
  files?: Record<string, string>;
  /** Default "main". */
  defaultBranch?: string;
  /** Login recorded as the creator; default the owner. */
  createdBy?: string;
}

export interface FakePullRequestState {
  number: number;
  title: string;
  body: string | null;
  state: "open" | "closed";
  /** Login of the token's owner who opened it (`<app-slug>[bot]` for an installation token). */
  user: string;
  /** Full name of the head repository. */
  headRepo: string;
  headRef: string;
  headSha: string;
  baseRef: string;
  baseSha: string;
}

export interface FakeRepositoryState {
  fullName: string;
  owner: string;
  private: boolean;
  defaultBranch: string;
  /** Login of who created it (for a fork: the token's owner). */
  createdBy: string;
  fork: boolean;
  /** Full name of the repository it was forked from, and of the root of its network. */
  parent: string | null;
  source: string | null;
  /** Full names of its direct forks. */
  forks: string[];
  /** Branch -> head commit: sha, message, author login (token owner) and files (path -> UTF-8 content). */
  branches: Record<string, { sha: string; message: string; author: string; files: Record<string, string> }>;
  pulls: FakePullRequestState[];
}

export interface FakeGitHub {
  url: string;
  requests: RequestLogEntry[];
  now(): number;
  setClockOffset(ms: number): void;
  createApp(options: CreateAppOptions): Promise<FakeGitHubApp>;
  addInstallation(options: AddInstallationOptions): GitHubInstallation;
  /** Decides what the next browser install (GET /apps/:slug/installations/new) creates. */
  setNextInstall(options: NextInstallOptions): void;
  /** Live installations (deleted ones are gone), each with its repository names. */
  readonly installations: Array<GitHubInstallation & { repositories: string[] }>;
  getInstallation(id: number): (GitHubInstallation & { repositories: string[] }) | undefined;
  suspend(installationId: number): void;
  unsuspend(installationId: number): void;
  /** Every installation token issued so far. */
  readonly installationTokens: IssuedInstallationToken[];
  isInstallationTokenValid(token: string): boolean;
  /** Makes every installation token issued so far expired. */
  expireInstallationTokens(): void;
  /** Lets a user see an installation through GET /user/installations. */
  grantUserAccess(login: string, installationId: number): void;
  deliverWebhook(targetUrl: string, options: DeliverWebhookOptions): Promise<{ status: number; body: string; deliveryId: string }>;
  /** Builds an `installation` webhook payload and applies it to the fake's state (deleted removes, suspend suspends...). */
  installationEvent(
    installationId: number,
    action: "created" | "deleted" | "suspend" | "unsuspend" | "new_permissions_accepted",
    options?: { permissions?: GitHubPermissions; events?: string[] },
  ): Record<string, unknown>;
  /** Builds an `installation_repositories` payload and adds/removes the repositories in the fake's state. */
  installationRepositoriesEvent(installationId: number, change: { added?: string[]; removed?: string[] }): Record<string, unknown>;
  /** Who is signed in to the fake's browser pages (GET /login/oauth/authorize). Default "octocat". */
  signInAs(login: string): void;
  /** The next GET /login/oauth/authorize is refused by the user: redirect with error=access_denied. */
  denyNextAuthorization(): void;
  /** Live (unrevoked, unexpired) user-to-server tokens of a user, over all apps. */
  userTokenCount(login: string): number;
  isUserTokenValid(token: string): boolean;
  /** True once a refresh token has been used (exchanged for a new pair). */
  isRefreshTokenSpent(token: string): boolean;
  /** Unused, unrevoked and unexpired. */
  isRefreshTokenValid(token: string): boolean;
  /** Expires now every user-to-server token (of that user, if given); refresh tokens stay usable. */
  expireUserTokens(login?: string): void;
  /** Creates a repository with an initial commit on its default branch. */
  createRepository(options: CreateRepositoryOptions): GitHubRepository;
  /** Gives a user access to a repository (as a collaborator), for user-to-server tokens. */
  grantRepositoryAccess(login: string, fullName: string, level: GitHubPermissionLevel): void;
  /** State of a repository made by createRepository or a fork, or undefined. */
  repository(fullName: string): FakeRepositoryState | undefined;
  /** The next request whose path starts with pathPrefix gets this response instead (once). */
  failNext(pathPrefix: string, response: { status: number; body?: unknown; headers?: Record<string, string> }): void;
  close(): Promise<void>;
}

// GitHub's own words, which clients (notably @octokit/auth-app) match on.
export const GITHUB_JWT_MESSAGES = {
  decode: "A JSON web token could not be decoded",
  expTooFar: "'Expiration time' claim ('exp') is too far in the future",
  expired: "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
  iat: "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
} as const;

const DOCS = "https://docs.github.com/rest";
const TOKEN_DOCS = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";
const RANK: Record<string, number> = { read: 1, write: 2, admin: 3 };
const DEFAULT_INSTALL: NextInstallOptions = {
  account: { login: "acme", type: "Organization" },
  repositories: ["api", "web"],
  permissions: { contents: "read", metadata: "read", pull_requests: "write" },
};

interface AppRecord extends FakeGitHubApp {
  name: string;
  callbackUrls: string[] | undefined;
  setupUrl: string | undefined;
  publicKey: KeyObject;
  requestOAuthOnInstall: boolean;
  expiringUserTokens: boolean;
  permissions: GitHubPermissions;
  events: string[];
  createdAt: string;
  owner: GitHubAccount;
}

interface InstallationRecord {
  data: GitHubInstallation;
  repositories: string[];
  deleted: boolean;
}

interface TokenRecord {
  installationId: number;
  expiresAtMs: number;
  permissions: GitHubPermissions;
  repositories: string[] | null;
  revoked: boolean;
}

interface UserRecord {
  account: GitHubAccount;
  installations: Set<number>;
}

interface UserTokenRecord {
  login: string;
  appId: number;
  expiresAtMs: number | null;
  revoked: boolean;
}

interface CodeRecord {
  appId: number;
  login: string;
  expiresAtMs: number;
  used: boolean;
  /** PKCE S256 challenge sent to /login/oauth/authorize. */
  codeChallenge?: string;
}

interface RefreshRecord {
  login: string;
  appId: number;
  expiresAtMs: number;
  spent: boolean;
  revoked: boolean;
}

interface CommitRecord {
  sha: string;
  treeSha: string;
  parents: string[];
  /** path -> blob sha */
  files: Map<string, string>;
  message: string;
  author: GitHubAccount;
  date: string;
}

interface PullRecord {
  number: number;
  id: number;
  title: string;
  body: string | null;
  state: "open" | "closed";
  draft: boolean;
  user: GitHubAccount;
  /** Key (lower-case full name) of the head repository. */
  headRepo: string;
  headRef: string;
  headSha: string;
  baseRef: string;
  baseSha: string;
  createdAt: string;
}

interface RepoRecord {
  id: number;
  owner: GitHubAccount;
  name: string;
  private: boolean;
  defaultBranch: string;
  /** branch -> commit sha */
  branches: Map<string, string>;
  createdBy: GitHubAccount;
  createdAt: string;
  /** Keys (lower-case full names) of the parent and of the network's root. */
  parent: string | null;
  source: string | null;
  forks: string[];
  pulls: PullRecord[];
  /** lower-case login -> level */
  collaborators: Map<string, GitHubPermissionLevel>;
}

type Actor =
  | { kind: "installation"; app: AppRecord; installation: InstallationRecord; token: TokenRecord; account: GitHubAccount }
  | { kind: "user"; app: AppRecord; login: string; account: GitHubAccount }
  | { kind: "anonymous" };

/** What a request needs: the app's permission, and (user-to-server tokens) the user's level on the repository. */
interface Need {
  permission: string;
  level: "read" | "write";
  user?: GitHubPermissionLevel;
}

const NOT_ACCESSIBLE = "Resource not accessible by integration";
const git = (type: string, content: Buffer | string) => {
  const body = Buffer.isBuffer(content) ? content : Buffer.from(content, "utf8");
  return createHash("sha1")
    .update(Buffer.concat([Buffer.from(`${type} ${body.length}\0`), body]))
    .digest("hex");
};
const isBase64 = (value: string) => {
  const compact = value.replace(/[\r\n]/g, "");
  return compact.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(compact);
};

const underCallback = (uri: string, callback: string) => {
  try {
    const u = new URL(uri);
    const c = new URL(callback);
    if (u.origin !== c.origin) return false;
    const base = c.pathname.endsWith("/") ? c.pathname : `${c.pathname}/`;
    return u.pathname === c.pathname || u.pathname.startsWith(base);
  } catch {
    return false;
  }
};
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const nodeId = (prefix: string, id: number) => Buffer.from(`${prefix}${id}`).toString("base64").replace(/=+$/, "");

export async function startFakeGitHub(): Promise<FakeGitHub> {
  const clock = createClock();
  const apps = new Map<number, AppRecord>();
  const installations = new Map<number, InstallationRecord>();
  const tokens = new Map<string, TokenRecord>();
  const tokenOrder: string[] = [];
  const users = new Map<string, UserRecord>();
  const accounts = new Map<string, GitHubAccount>();
  const repoIds = new Map<string, number>();
  const userTokens = new Map<string, UserTokenRecord>();
  const refreshTokens = new Map<string, RefreshRecord>();
  const codes = new Map<string, CodeRecord>();
  const repos = new Map<string, RepoRecord>();
  const commits = new Map<string, CommitRecord>();
  const blobs = new Map<string, Buffer>();
  let signedIn = "octocat";
  let denyNextAuthorization = false;
  let nextPullId = 1_800_000_000 + Math.floor(Math.random() * 1_000_000);
  const failures: Array<{ prefix: string; response: { status: number; body?: unknown; headers?: Record<string, string> } }> = [];
  let nextInstall: NextInstallOptions | undefined;
  let nextAppId = 100_000 + Math.floor(Math.random() * 800_000);
  let nextInstallationId = 40_000_000 + Math.floor(Math.random() * 1_000_000);
  let nextAccountId = 1_000_000 + Math.floor(Math.random() * 1_000_000);
  let nextRepoId = 600_000_000 + Math.floor(Math.random() * 1_000_000);
  let origin = "";

  const nowSec = () => Math.floor(clock.now() / 1000);

  const accountFor = (login: string, type: GitHubAccount["type"]): GitHubAccount => {
    const key = login.toLowerCase();
    let account = accounts.get(key);
    if (!account) {
      const id = nextAccountId++;
      account = {
        login,
        id,
        node_id: nodeId(type === "Organization" ? "O_" : type === "Bot" ? "BOT_" : "U_", id),
        avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
        url: `${origin}/users/${login}`,
        html_url: `${origin}/${login}`,
        type,
        site_admin: false,
      };
      accounts.set(key, account);
    }
    return account;
  };

  const userFor = (login: string): UserRecord => {
    const key = login.toLowerCase();
    let user = users.get(key);
    if (!user) {
      user = { account: accountFor(login, "User"), installations: new Set() };
      users.set(key, user);
    }
    return user;
  };

  const repoObject = (owner: GitHubAccount, name: string): GitHubRepository => {
    const fullName = `${owner.login}/${name}`;
    let id = repoIds.get(fullName.toLowerCase());
    if (id === undefined) {
      id = nextRepoId++;
      repoIds.set(fullName.toLowerCase(), id);
    }
    const record = repos.get(fullName.toLowerCase());
    return {
      id,
      node_id: nodeId("R_", id),
      name,
      full_name: fullName,
      private: record ? record.private : true,
      owner,
      html_url: `${origin}/${fullName}`,
      url: `${origin}/repos/${fullName}`,
      default_branch: record ? record.defaultBranch : "main",
    };
  };

  const liveInstallation = (id: number): InstallationRecord | undefined => {
    const record = installations.get(id);
    return record && !record.deleted ? record : undefined;
  };

  const mustInstallation = (id: number): InstallationRecord => {
    const record = liveInstallation(id);
    if (!record) throw new Error(`fake GitHub: no installation ${id}`);
    return record;
  };

  const snapshot = (record: InstallationRecord) => structuredClone({ ...record.data, repositories: [...record.repositories] });

  const createInstallation = (options: AddInstallationOptions): InstallationRecord => {
    const app = apps.get(options.appId);
    if (!app) throw new Error(`fake GitHub: no app ${options.appId}`);
    const account = accountFor(options.account.login, options.account.type);
    const id = nextInstallationId++;
    const created = isoSeconds(clock.now());
    const data: GitHubInstallation = {
      id,
      account,
      repository_selection: options.repositorySelection ?? "selected",
      access_tokens_url: `${origin}/app/installations/${id}/access_tokens`,
      repositories_url: `${origin}/installation/repositories`,
      html_url:
        account.type === "Organization" ? `${origin}/organizations/${account.login}/settings/installations/${id}` : `${origin}/settings/installations/${id}`,
      app_id: app.appId,
      app_slug: app.slug,
      client_id: app.clientId,
      target_id: account.id,
      target_type: account.type === "Organization" ? "Organization" : "User",
      permissions: { ...options.permissions },
      events: options.events ?? [...app.events],
      single_file_name: null,
      has_multiple_single_files: false,
      single_file_paths: [],
      created_at: created,
      updated_at: created,
      suspended_at: null,
      suspended_by: null,
    };
    const record: InstallationRecord = { data, repositories: [...options.repositories], deleted: false };
    installations.set(id, record);
    const installer = options.installedBy ?? (account.type === "User" ? account.login : `${account.login}-admin`);
    userFor(installer).installations.add(id);
    return record;
  };

  const touch = (record: InstallationRecord) => {
    record.data.updated_at = isoSeconds(clock.now());
  };

  // ---- responses ----
  const gh = (status: number, message: string, documentationUrl = DOCS): FakeResponse => ({
    status,
    json: { message, documentation_url: documentationUrl, status: String(status) },
  });
  const notFound = (documentationUrl = DOCS) => gh(404, "Not Found", documentationUrl);
  const badCredentials = () => gh(401, "Bad credentials");
  const ok = (json: unknown, status = 200, headers?: Record<string, string>): FakeResponse => ({ status, json, headers });
  const noContent = (): FakeResponse => ({ status: 204 });

  const paginate = <T>(req: FakeRequest, items: T[]): { page: T[]; headers: Record<string, string> } => {
    const perPage = Math.min(100, Math.max(1, Number(req.query.get("per_page") ?? 30) || 30));
    const pageNo = Math.max(1, Number(req.query.get("page") ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const page = items.slice((pageNo - 1) * perPage, pageNo * perPage);
    const link = (p: number, rel: string) => {
      const u = new URL(`${origin}${req.path}`);
      req.query.forEach((v, k) => u.searchParams.set(k, v));
      u.searchParams.set("per_page", String(perPage));
      u.searchParams.set("page", String(p));
      return `<${u.toString()}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (pageNo > 1) links.push(link(pageNo - 1, "prev"), link(1, "first"));
    if (pageNo < last) links.push(link(pageNo + 1, "next"), link(last, "last"));
    return { page, headers: links.length ? { link: links.join(", ") } : {} };
  };

  // ---- app JWT ----
  const authenticateApp = async (req: FakeRequest): Promise<AppRecord | FakeResponse> => {
    const auth = authorization(req.headers);
    // A JWT must be sent with the Bearer scheme ("token" is for OAuth and installation tokens).
    if (auth?.scheme !== "bearer") return gh(401, GITHUB_JWT_MESSAGES.decode);
    const jwt = auth.credentials;
    let app: AppRecord | undefined;
    try {
      const header = decodeProtectedHeader(jwt);
      if (header.alg !== "RS256") return gh(401, GITHUB_JWT_MESSAGES.decode);
      const iss = decodeJwt(jwt).iss as unknown;
      if (typeof iss !== "string" && typeof iss !== "number") return gh(401, GITHUB_JWT_MESSAGES.decode);
      app = [...apps.values()].find((a) => String(a.appId) === String(iss) || a.clientId === iss);
      if (!app) return gh(401, GITHUB_JWT_MESSAGES.decode);
      await compactVerify(jwt, app.publicKey, { algorithms: ["RS256"] });
    } catch {
      return gh(401, GITHUB_JWT_MESSAGES.decode);
    }
    const claims = decodeJwt(jwt) as Record<string, unknown>;
    const now = nowSec();
    const exp = claims.exp;
    if (typeof exp !== "number" || !Number.isFinite(exp)) return gh(401, GITHUB_JWT_MESSAGES.expired);
    if (exp > now + 600) return gh(401, GITHUB_JWT_MESSAGES.expTooFar);
    if (exp <= now) return gh(401, GITHUB_JWT_MESSAGES.expired);
    const iat = claims.iat;
    if (typeof iat !== "number" || !Number.isInteger(iat) || iat > now) return gh(401, GITHUB_JWT_MESSAGES.iat);
    return app;
  };

  // ---- installation tokens ----
  const authenticateInstallation = (req: FakeRequest): { token: string; record: TokenRecord; installation: InstallationRecord } | FakeResponse => {
    const auth = authorization(req.headers);
    if (!auth || (auth.scheme !== "bearer" && auth.scheme !== "token")) return gh(401, "Requires authentication");
    const record = tokens.get(auth.credentials);
    const installation = record ? liveInstallation(record.installationId) : undefined;
    if (!record || !installation || record.revoked || record.expiresAtMs <= clock.now()) return badCredentials();
    if (installation.data.suspended_at) return gh(403, "This installation has been suspended");
    return { token: auth.credentials, record, installation };
  };

  const tokenRepositories = (record: TokenRecord, installation: InstallationRecord) => {
    const names = record.repositories
      ? installation.repositories.filter((r) => record.repositories!.some((n) => n.toLowerCase() === r.toLowerCase()))
      : installation.repositories;
    return names.map((n) => repoObject(installation.data.account, n));
  };

  const issueInstallationToken = async (req: FakeRequest, installationId: number): Promise<FakeResponse> => {
    const app = await authenticateApp(req);
    if ("status" in app) return app;
    const installation = liveInstallation(installationId);
    if (!installation || installation.data.app_id !== app.appId) return notFound(TOKEN_DOCS);
    if (installation.data.suspended_at) return gh(403, "This installation has been suspended", TOKEN_DOCS);
    if (req.bodyType === "invalid") return gh(400, "Problems parsing JSON", TOKEN_DOCS);
    const body = (req.body && typeof req.body === "object" ? req.body : {}) as Record<string, unknown>;

    let repositories: string[] | null = null;
    const inaccessible = gh(422, "There is at least one repository that does not exist or is not accessible to the parent installation.", TOKEN_DOCS);
    if (body.repositories !== undefined) {
      if (!Array.isArray(body.repositories) || !body.repositories.every((r) => typeof r === "string")) return gh(422, "Invalid request.", TOKEN_DOCS);
      repositories = [];
      for (const name of body.repositories as string[]) {
        const found = installation.repositories.find((r) => r.toLowerCase() === name.toLowerCase());
        if (!found) return inaccessible;
        if (!repositories.includes(found)) repositories.push(found);
      }
    }
    if (body.repository_ids !== undefined) {
      if (!Array.isArray(body.repository_ids) || !body.repository_ids.every((r) => typeof r === "number")) return gh(422, "Invalid request.", TOKEN_DOCS);
      repositories ??= [];
      for (const id of body.repository_ids as number[]) {
        const found = installation.repositories.find((r) => repoObject(installation.data.account, r).id === id);
        if (!found) return inaccessible;
        if (!repositories.includes(found)) repositories.push(found);
      }
    }
    let permissions: GitHubPermissions = { ...installation.data.permissions };
    if (body.permissions !== undefined) {
      if (!body.permissions || typeof body.permissions !== "object" || Array.isArray(body.permissions)) return gh(422, "Invalid request.", TOKEN_DOCS);
      permissions = {};
      for (const [name, level] of Object.entries(body.permissions as Record<string, unknown>)) {
        const granted = installation.data.permissions[name];
        if (typeof level !== "string" || !RANK[level] || !granted || RANK[level]! > RANK[granted]!) {
          return gh(422, "The permissions requested are not granted to this installation.", TOKEN_DOCS);
        }
        permissions[name] = level as GitHubPermissionLevel;
      }
    }
    // GitHub's newer installation tokens are longer than the classic 40 characters; clients must not assume 40.
    const token = secret(`ghs_${randomString(52)}`);
    const expiresAtMs = (Math.floor(clock.now() / 1000) + 3600) * 1000;
    tokens.set(token, { installationId, expiresAtMs, permissions, repositories, revoked: false });
    tokenOrder.push(token);
    const selection = repositories ? "selected" : installation.data.repository_selection;
    const response: Record<string, unknown> = {
      token,
      expires_at: isoSeconds(expiresAtMs),
      permissions,
      repository_selection: selection,
    };
    if (repositories || installation.data.repository_selection === "selected") {
      response.repositories = (repositories ?? installation.repositories).map((n) => repoObject(installation.data.account, n));
    }
    return ok(response, 201);
  };

  // ---- OAuth (user-to-server) ----
  const oauthReply = (req: FakeRequest, fields: Record<string, string | number>): FakeResponse => {
    const accept = String(req.headers.accept ?? "");
    if (accept.includes("application/json")) return ok(fields);
    const form = new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)]));
    return { status: 200, headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" }, text: form.toString() };
  };
  const oauthError = (req: FakeRequest, error: string, description: string, anchor: string) =>
    oauthReply(req, {
      error,
      error_description: description,
      error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${anchor}`,
    });

  const issueUserToken = (req: FakeRequest, app: AppRecord, login: string): FakeResponse => {
    const accessToken = secret(`ghu_${randomString(36)}`);
    const fields: Record<string, string | number> = { access_token: accessToken };
    if (app.expiringUserTokens) {
      const refresh = secret(`ghr_${randomString(76)}`);
      userTokens.set(accessToken, { login, appId: app.appId, expiresAtMs: clock.now() + 28_800_000, revoked: false });
      refreshTokens.set(refresh, { login, appId: app.appId, expiresAtMs: clock.now() + 15_897_600_000, spent: false, revoked: false });
      Object.assign(fields, { expires_in: 28800, refresh_token: refresh, refresh_token_expires_in: 15897600 });
    } else {
      userTokens.set(accessToken, { login, appId: app.appId, expiresAtMs: null, revoked: false });
    }
    Object.assign(fields, { scope: "", token_type: "bearer" });
    return oauthReply(req, fields);
  };

  const oauthAccessToken = (req: FakeRequest): FakeResponse => {
    const params: Record<string, string> = { ...Object.fromEntries(req.query), ...bodyFields(req) };
    const app = [...apps.values()].find((a) => a.clientId === params.client_id);
    if (!app || !params.client_secret || app.clientSecret !== params.client_secret) {
      return oauthError(req, "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", "incorrect-client-credentials");
    }
    if (params.grant_type === "refresh_token") {
      const record = params.refresh_token ? refreshTokens.get(params.refresh_token) : undefined;
      if (!record || record.spent || record.revoked || record.appId !== app.appId || record.expiresAtMs <= clock.now()) {
        return oauthError(req, "bad_refresh_token", "The refresh token passed is incorrect or expired.", "bad-refresh-token");
      }
      record.spent = true;
      return issueUserToken(req, app, record.login);
    }
    if (params.redirect_uri !== undefined && app.callbackUrls && !app.callbackUrls.some((cb) => underCallback(params.redirect_uri!, cb))) {
      return oauthError(req, "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "redirect-uri-mismatch");
    }
    const code = params.code ? codes.get(params.code) : undefined;
    const badCode = () => oauthError(req, "bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code");
    if (!code || code.used || code.appId !== app.appId || code.expiresAtMs <= clock.now()) return badCode();
    // PKCE: a code whose authorization carried a challenge needs the verifier that hashes (S256) to it.
    if (code.codeChallenge !== undefined) {
      const verifier = params.code_verifier;
      if (!verifier || createHash("sha256").update(verifier).digest("base64url") !== code.codeChallenge) return badCode();
    }
    code.used = true;
    return issueUserToken(req, app, code.login);
  };

  // ---- browser user authorization (web application flow) ----
  const authorizeErrorUri = (anchor: string) => `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#${anchor}`;
  const authorizePage = (req: FakeRequest): FakeResponse => {
    const q = req.query;
    const app = [...apps.values()].find((a) => a.clientId === q.get("client_id"));
    if (!app) return htmlPage(404, "Page not found", "This is not the web page you are looking for.");
    const state = q.get("state") ?? undefined;
    const registered = app.callbackUrls?.[0];
    const requested = q.get("redirect_uri") ?? undefined;
    if (requested !== undefined && app.callbackUrls && !app.callbackUrls.some((cb) => underCallback(requested, cb))) {
      if (!registered) return htmlPage(400, "Redirect URI mismatch", "The redirect_uri MUST match the registered callback URL for this application.");
      // GitHub sends the user to the registered callback URL with the error.
      return {
        status: 302,
        redirect: withQuery(registered, {
          error: "redirect_uri_mismatch",
          error_description: "The redirect_uri MUST match the registered callback URL for this application.",
          error_uri: authorizeErrorUri("redirect-uri-mismatch"),
          state,
        }),
      };
    }
    const target = requested ?? registered;
    if (!target) return htmlPage(400, "Missing redirect_uri", "The application has no callback URL.");
    const challenge = q.get("code_challenge") ?? undefined;
    if (challenge !== undefined && (q.get("code_challenge_method") !== "S256" || !/^[A-Za-z0-9_-]{43}$/.test(challenge))) {
      // The fake supports S256 only (RFC 7636 4.4.1: invalid_request for an unsupported transformation).
      return { status: 302, redirect: withQuery(target, { error: "invalid_request", error_description: "code_challenge_method must be S256.", state }) };
    }
    if (denyNextAuthorization) {
      denyNextAuthorization = false;
      return {
        status: 302,
        redirect: withQuery(target, {
          error: "access_denied",
          error_description: "The user has denied your application access.",
          error_uri: authorizeErrorUri("access-denied"),
          state,
        }),
      };
    }
    userFor(signedIn);
    const code = secret(randomString(20, "0123456789abcdef"));
    codes.set(code, { appId: app.appId, login: signedIn, expiresAtMs: clock.now() + 600_000, used: false, codeChallenge: challenge });
    return { status: 302, redirect: withQuery(target, { code, state }) };
  };

  // ---- /applications/{client_id}/grant and /token (Basic client_id:client_secret) ----
  const applicationsRoute = (req: FakeRequest, clientId: string, what: "grant" | "token"): FakeResponse => {
    const docs = `https://docs.github.com/rest/apps/oauth-applications#${what === "grant" ? "delete-an-app-authorization" : "delete-an-app-token"}`;
    const basic = basicCredentials(req.headers);
    if (!basic) return gh(401, "Requires authentication", docs);
    const app = [...apps.values()].find((a) => a.clientId === clientId);
    // GitHub answers 404 for wrong credentials on these endpoints.
    if (!app || basic.user !== app.clientId || basic.password !== app.clientSecret) return notFound(docs);
    if (req.bodyType === "invalid") return gh(400, "Problems parsing JSON", docs);
    const accessToken = bodyFields(req).access_token;
    if (!accessToken) return gh(422, 'Invalid request.\n\n"access_token" wasn\'t supplied.', docs);
    const record = userTokens.get(accessToken);
    if (!record || record.appId !== app.appId || record.revoked || (record.expiresAtMs !== null && record.expiresAtMs <= clock.now())) return notFound(docs);
    if (what === "token") {
      record.revoked = true;
      return noContent();
    }
    const login = record.login.toLowerCase();
    for (const t of userTokens.values()) if (t.appId === app.appId && t.login.toLowerCase() === login) t.revoked = true;
    for (const r of refreshTokens.values()) if (r.appId === app.appId && r.login.toLowerCase() === login) r.revoked = true;
    for (const c of codes.values()) if (c.appId === app.appId && c.login.toLowerCase() === login) c.used = true;
    return noContent();
  };

  const authenticateUser = (req: FakeRequest): { login: string; app: AppRecord } | FakeResponse => {
    const auth = authorization(req.headers);
    if (!auth || (auth.scheme !== "bearer" && auth.scheme !== "token")) return gh(401, "Requires authentication");
    if (tokens.has(auth.credentials)) {
      return gh(403, "You must authenticate with an access token authorized to a GitHub App in order to list installations");
    }
    const record = userTokens.get(auth.credentials);
    const app = record ? apps.get(record.appId) : undefined;
    if (!record || !app || record.revoked || (record.expiresAtMs !== null && record.expiresAtMs <= clock.now())) return badCredentials();
    return { login: record.login, app };
  };

  // ---- browser install ----
  const installFlow = (req: FakeRequest, slug: string): FakeResponse => {
    const app = [...apps.values()].find((a) => a.slug === slug);
    if (!app) return htmlPage(404, "Page not found", "This is not the web page you are looking for.");
    const spec = nextInstall ?? DEFAULT_INSTALL;
    nextInstall = undefined;
    const existing = [...installations.values()].find(
      (r) => !r.deleted && r.data.app_id === app.appId && r.data.account.login.toLowerCase() === spec.account.login.toLowerCase(),
    );
    let record: InstallationRecord;
    let action: "install" | "update";
    if (existing) {
      existing.repositories = [...spec.repositories];
      existing.data.permissions = { ...spec.permissions };
      existing.data.repository_selection = spec.repositorySelection ?? existing.data.repository_selection;
      touch(existing);
      record = existing;
      action = "update";
    } else {
      record = createInstallation({ ...spec, appId: app.appId });
      action = "install";
    }
    const account = record.data.account;
    const installer = spec.installedBy ?? (account.type === "User" ? account.login : `${account.login}-admin`);
    userFor(installer).installations.add(record.data.id);
    let code: string | undefined;
    if (app.requestOAuthOnInstall) {
      code = secret(randomString(20, "0123456789abcdef"));
      codes.set(code, { appId: app.appId, login: installer, expiresAtMs: clock.now() + 600_000, used: false });
    }
    if (!app.setupUrl) return htmlPage(200, "Installed", `${app.name} was installed on ${account.login}.`);
    const state = req.query.get("state") ?? undefined;
    return {
      status: 302,
      redirect: withQuery(app.setupUrl, { code, installation_id: String(record.data.id), setup_action: action, state }),
    };
  };

  const senderFor = (installation: InstallationRecord): GitHubAccount => {
    for (const user of users.values()) if (user.installations.has(installation.data.id)) return user.account;
    return accountFor("octocat", "User");
  };

  // ---- repositories ----
  const repoKey = (owner: string, name: string) => `${owner}/${name}`.toLowerCase();
  const keyOf = (repo: RepoRecord) => repoKey(repo.owner.login, repo.name);
  const fullNameOf = (repo: RepoRecord) => `${repo.owner.login}/${repo.name}`;
  const rootOf = (repo: RepoRecord) => repo.source ?? keyOf(repo);
  const sameLogin = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  const botAccount = (app: AppRecord) => accountFor(`${app.slug}[bot]`, "Bot");

  const storeBlob = (content: Buffer) => {
    const sha = git("blob", content);
    blobs.set(sha, content);
    return sha;
  };

  const makeCommit = (parent: CommitRecord | undefined, changes: Map<string, string>, message: string, author: GitHubAccount): CommitRecord => {
    const files = new Map(parent?.files ?? []);
    for (const [path, blob] of changes) files.set(path, blob);
    const entries = [...files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const treeSha = git("tree", entries.map(([path, blob]) => `100644 ${path}\0${blob}`).join(""));
    const date = isoSeconds(clock.now());
    const header = [`tree ${treeSha}`, ...(parent ? [`parent ${parent.sha}`] : []), `author ${author.login} ${date}`, `nonce ${randomUUID()}`];
    const commit: CommitRecord = {
      sha: git("commit", `${header.join("\n")}\n\n${message}`),
      treeSha,
      parents: parent ? [parent.sha] : [],
      files,
      message,
      author,
      date,
    };
    commits.set(commit.sha, commit);
    return commit;
  };

  const ancestors = (sha: string): Set<string> => {
    const seen = new Set<string>();
    const stack = [sha];
    while (stack.length) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...(commits.get(next)?.parents ?? []));
    }
    return seen;
  };

  /** Whether a commit is reachable from a branch of a repository of the same fork network. */
  const inNetwork = (repo: RepoRecord, sha: string) =>
    [...repos.values()].some((r) => rootOf(r) === rootOf(repo) && [...r.branches.values()].some((head) => ancestors(head).has(sha)));

  const covers = (installation: InstallationRecord, repo: RepoRecord) =>
    !installation.deleted &&
    sameLogin(installation.data.account.login, repo.owner.login) &&
    (installation.data.repository_selection === "all" || installation.repositories.some((n) => sameLogin(n, repo.name)));

  /** The app's live, unsuspended installation on an account. */
  const appInstallationOn = (app: AppRecord, login: string) =>
    [...installations.values()].find((r) => !r.deleted && !r.data.suspended_at && r.data.app_id === app.appId && sameLogin(r.data.account.login, login));

  const userLevel = (login: string, repo: RepoRecord): GitHubPermissionLevel | undefined => {
    if (sameLogin(repo.owner.login, login)) return "admin";
    return repo.collaborators.get(login.toLowerCase()) ?? (repo.private ? undefined : "read");
  };

  const appGrants = (permissions: GitHubPermissions, need: Need) => {
    const granted = permissions[need.permission] ?? (need.permission === "metadata" ? "read" : undefined);
    return !!granted && RANK[granted]! >= RANK[need.level]!;
  };

  /** undefined when the actor may do it, else GitHub's refusal (see the header comment for the rules). */
  const refuse = (actor: Actor, repo: RepoRecord, need: Need, docs = DOCS): FakeResponse | undefined => {
    const publicRead = !repo.private && need.level === "read";
    const outside = () => (publicRead ? undefined : repo.private ? notFound(docs) : gh(403, NOT_ACCESSIBLE, docs));
    if (actor.kind === "anonymous") return publicRead ? undefined : repo.private ? notFound(docs) : gh(401, "Requires authentication", docs);
    if (actor.kind === "installation") {
      const narrowed = actor.token.repositories;
      const covered = covers(actor.installation, repo) && (!narrowed || narrowed.some((n) => sameLogin(n, repo.name)));
      if (!covered) return outside();
      return appGrants(actor.token.permissions, need) ? undefined : gh(403, NOT_ACCESSIBLE, docs);
    }
    const level = userLevel(actor.login, repo);
    if (!level) return notFound(docs);
    if (publicRead) return undefined;
    const installation = appInstallationOn(actor.app, repo.owner.login);
    if (!installation || !covers(installation, repo)) return outside();
    if (!appGrants(installation.data.permissions, need)) return gh(403, NOT_ACCESSIBLE, docs);
    if (RANK[level]! < RANK[need.user ?? need.level]!) return notFound(docs);
    return undefined;
  };

  const authenticateActor = (req: FakeRequest): Actor | FakeResponse => {
    const auth = authorization(req.headers);
    if (!auth) return { kind: "anonymous" };
    if (auth.scheme !== "bearer" && auth.scheme !== "token") return badCredentials();
    if (tokens.has(auth.credentials)) {
      const result = authenticateInstallation(req);
      if ("status" in result) return result;
      const app = apps.get(result.installation.data.app_id)!;
      return { kind: "installation", app, installation: result.installation, token: result.record, account: botAccount(app) };
    }
    const result = authenticateUser(req);
    if ("status" in result) return result;
    return { kind: "user", app: result.app, login: result.login, account: userFor(result.login).account };
  };

  const jsonObject = (req: FakeRequest, docs: string): Record<string, unknown> | FakeResponse => {
    if (req.bodyType === "invalid") return gh(400, "Problems parsing JSON", docs);
    return req.body && typeof req.body === "object" && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
  };
  const isResponse = (value: unknown): value is FakeResponse =>
    typeof value === "object" && value !== null && typeof (value as FakeResponse).status === "number";
  const validationFailed = (errors: unknown[], docs: string): FakeResponse => ({
    status: 422,
    json: { message: "Validation Failed", errors, documentation_url: docs, status: "422" },
  });
  const notSupplied = (field: string, docs: string) => gh(422, `Invalid request.\n\n"${field}" wasn't supplied.`, docs);
  const str = (value: unknown) => (typeof value === "string" ? value : undefined);

  const repoJson = (repo: RepoRecord, actor?: Actor, withParents = true): Record<string, unknown> => {
    const base = repoObject(repo.owner, repo.name);
    const json: Record<string, unknown> = {
      ...base,
      description: null,
      fork: repo.parent !== null,
      visibility: repo.private ? "private" : "public",
      forks_url: `${base.url}/forks`,
      pulls_url: `${base.url}/pulls{/number}`,
      contents_url: `${base.url}/contents/{+path}`,
      git_refs_url: `${base.url}/git/refs{/sha}`,
      created_at: repo.createdAt,
      updated_at: repo.createdAt,
      forks_count: repo.forks.length,
    };
    if (actor && actor.kind !== "anonymous") {
      const can = (need: Need) => refuse(actor, repo, need) === undefined;
      const admin = can({ permission: "administration", level: "write", user: "admin" });
      const push = can({ permission: "contents", level: "write" });
      json.permissions = { admin, maintain: admin, push, triage: push, pull: can({ permission: "metadata", level: "read" }) };
    }
    if (withParents && repo.parent && repo.source) {
      json.parent = repoJson(repos.get(repo.parent)!, undefined, false);
      json.source = repoJson(repos.get(repo.source)!, undefined, false);
    }
    return json;
  };

  const accountOf = (actor: Actor) => (actor.kind === "anonymous" ? accountFor("ghost", "User") : actor.account);

  const refJson = (repo: RepoRecord, branch: string, sha: string) => ({
    ref: `refs/heads/${branch}`,
    node_id: Buffer.from(`REF_${repo.id}:${branch}`).toString("base64").replace(/=+$/, ""),
    url: `${origin}/repos/${fullNameOf(repo)}/git/refs/heads/${branch}`,
    object: { sha, type: "commit", url: `${origin}/repos/${fullNameOf(repo)}/git/commits/${sha}` },
  });

  const contentJson = (repo: RepoRecord, path: string, blobSha: string, ref: string, withContent: boolean) => {
    const full = fullNameOf(repo);
    const content = blobs.get(blobSha)!;
    const url = `${origin}/repos/${full}/contents/${path}?ref=${encodeURIComponent(ref)}`;
    const json: Record<string, unknown> = {
      type: "file",
      name: path.split("/").pop()!,
      path,
      sha: blobSha,
      size: content.length,
      url,
      html_url: `${origin}/${full}/blob/${ref}/${path}`,
      git_url: `${origin}/repos/${full}/git/blobs/${blobSha}`,
      download_url: `${origin}/${full}/raw/${ref}/${path}`,
      _links: { self: url, git: `${origin}/repos/${full}/git/blobs/${blobSha}`, html: `${origin}/${full}/blob/${ref}/${path}` },
    };
    // GitHub wraps the base64 at 60 characters.
    if (withContent) Object.assign(json, { encoding: "base64", content: `${(content.toString("base64").match(/.{1,60}/g) ?? []).join("\n")}\n` });
    return json;
  };

  const commitJson = (repo: RepoRecord, commit: CommitRecord) => {
    const full = fullNameOf(repo);
    const person = { name: commit.author.login, email: `${commit.author.id}+${commit.author.login}@users.noreply.github.com`, date: commit.date };
    return {
      sha: commit.sha,
      node_id: nodeId("C_", Number.parseInt(commit.sha.slice(0, 8), 16)),
      url: `${origin}/repos/${full}/git/commits/${commit.sha}`,
      html_url: `${origin}/${full}/commit/${commit.sha}`,
      author: person,
      committer: person,
      message: commit.message,
      tree: { sha: commit.treeSha, url: `${origin}/repos/${full}/git/trees/${commit.treeSha}` },
      parents: commit.parents.map((sha) => ({ sha, url: `${origin}/repos/${full}/git/commits/${sha}`, html_url: `${origin}/${full}/commit/${sha}` })),
    };
  };

  const resolveRef = (repo: RepoRecord, ref: string): string | undefined => {
    const branch = ref.replace(/^(refs\/)?heads\//, "");
    const head = repo.branches.get(branch);
    if (head) return head;
    return /^[0-9a-f]{40}$/.test(ref) && commits.has(ref) && inNetwork(repo, ref) ? ref : undefined;
  };

  const getContents = (req: FakeRequest, actor: Actor, repo: RepoRecord, path: string): FakeResponse => {
    const docs = "https://docs.github.com/rest/repos/contents#get-repository-content";
    const denied = refuse(actor, repo, { permission: "contents", level: "read" }, docs);
    if (denied) return denied;
    const ref = req.query.get("ref") || repo.defaultBranch;
    const sha = resolveRef(repo, ref);
    if (!sha) return gh(404, `No commit found for the ref ${ref}`, docs);
    const commit = commits.get(sha)!;
    const blob = commit.files.get(path);
    if (blob) return ok(contentJson(repo, path, blob, ref, true));
    // A directory: its direct children.
    const prefix = path ? `${path}/` : "";
    const children = new Map<string, Record<string, unknown>>();
    for (const [file, fileBlob] of commit.files) {
      if (!file.startsWith(prefix)) continue;
      const rest = file.slice(prefix.length);
      const slash = rest.indexOf("/");
      if (slash < 0) children.set(rest, contentJson(repo, file, fileBlob, ref, false));
      else {
        const dir = `${prefix}${rest.slice(0, slash)}`;
        children.set(rest.slice(0, slash), { type: "dir", name: rest.slice(0, slash), path: dir, sha: git("tree", dir), size: 0 });
      }
    }
    if (children.size === 0) return notFound(docs);
    return ok([...children.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v));
  };

  const putContents = (req: FakeRequest, actor: Actor, repo: RepoRecord, path: string): FakeResponse => {
    const docs = "https://docs.github.com/rest/repos/contents#create-or-update-file-contents";
    const denied = refuse(actor, repo, { permission: "contents", level: "write" }, docs);
    if (denied) return denied;
    const body = jsonObject(req, docs);
    if (isResponse(body)) return body;
    const message = str(body.message);
    const content = str(body.content);
    if (!message) return notSupplied("message", docs);
    if (content === undefined) return notSupplied("content", docs);
    if (!path || path.endsWith("/")) return notFound(docs);
    if (!isBase64(content)) return gh(422, "content is not valid Base64", docs);
    const branch = str(body.branch) ?? repo.defaultBranch;
    const head = repo.branches.get(branch);
    if (!head) return gh(404, `Branch ${branch} not found`, docs);
    const parent = commits.get(head)!;
    const existing = parent.files.get(path);
    if (existing !== undefined) {
      const sha = str(body.sha);
      if (sha === undefined) return notSupplied("sha", docs);
      if (sha !== existing) return gh(409, `${path} does not match ${sha}`, docs);
    }
    const blob = storeBlob(Buffer.from(content.replace(/[\r\n]/g, ""), "base64"));
    const commit = makeCommit(parent, new Map([[path, blob]]), message, accountOf(actor));
    repo.branches.set(branch, commit.sha);
    return ok({ content: contentJson(repo, path, blob, branch, false), commit: commitJson(repo, commit) }, existing === undefined ? 201 : 200);
  };

  const createRef = (req: FakeRequest, actor: Actor, repo: RepoRecord): FakeResponse => {
    const docs = "https://docs.github.com/rest/git/refs#create-a-reference";
    const denied = refuse(actor, repo, { permission: "contents", level: "write" }, docs);
    if (denied) return denied;
    const body = jsonObject(req, docs);
    if (isResponse(body)) return body;
    const ref = str(body.ref);
    const sha = str(body.sha);
    if (!ref) return notSupplied("ref", docs);
    if (!sha) return notSupplied("sha", docs);
    if (!/^refs\/[^/]+\/.+/.test(ref) || ref.includes("..") || ref.endsWith("/") || /\s/.test(ref)) return gh(422, "Reference name is invalid", docs);
    // The fake models branches only.
    if (!ref.startsWith("refs/heads/")) return gh(422, "fake GitHub: only refs/heads/* references are modelled", docs);
    if (!commits.has(sha) || !inNetwork(repo, sha)) return gh(422, "Object does not exist", docs);
    const branch = ref.slice("refs/heads/".length);
    if (repo.branches.has(branch)) return gh(422, "Reference already exists", docs);
    repo.branches.set(branch, sha);
    return ok(refJson(repo, branch, sha), 201, { location: `${origin}/repos/${fullNameOf(repo)}/git/refs/heads/${branch}` });
  };

  const createFork = (req: FakeRequest, actor: Actor, repo: RepoRecord): FakeResponse => {
    const docs = "https://docs.github.com/rest/repos/forks#create-a-fork";
    if (actor.kind === "anonymous") return gh(401, "Requires authentication", docs);
    const denied = refuse(actor, repo, { permission: "contents", level: "read" }, docs);
    if (denied) return denied;
    const body = jsonObject(req, docs);
    if (isResponse(body)) return body;
    const organization = str(body.organization);
    const forkNeeds: Need[] = [
      { permission: "administration", level: "write" },
      { permission: "contents", level: "read" },
    ];
    let target: GitHubAccount;
    let targetInstallation: InstallationRecord;
    if (actor.kind === "installation") {
      // An installation acts only in its own account, which must be an organization (a bot owns no repositories).
      const account = actor.installation.data.account;
      if (!organization || !sameLogin(organization, account.login) || account.type !== "Organization") return gh(403, NOT_ACCESSIBLE, docs);
      if (!forkNeeds.every((need) => appGrants(actor.token.permissions, need))) return gh(403, NOT_ACCESSIBLE, docs);
      target = account;
      targetInstallation = actor.installation;
    } else {
      if (organization) {
        const org = accounts.get(organization.toLowerCase());
        if (org?.type !== "Organization") return validationFailed([{ resource: "Fork", field: "organization", code: "invalid" }], docs);
        // Membership stands in as "the user can see an installation on the organization".
        const member = [...userFor(actor.login).installations].some((id) => {
          const r = liveInstallation(id);
          return !!r && sameLogin(r.data.account.login, org.login);
        });
        if (!member) return gh(403, NOT_ACCESSIBLE, docs);
        target = org;
      } else {
        target = actor.account;
      }
      const installation = appInstallationOn(actor.app, target.login);
      if (!installation || !forkNeeds.every((need) => appGrants(installation.data.permissions, need))) return gh(403, NOT_ACCESSIBLE, docs);
      targetInstallation = installation;
    }
    const network = [...repos.values()].find((r) => sameLogin(r.owner.login, target.login) && rootOf(r) === rootOf(repo));
    if (network) {
      // GitHub hands back the account's existing fork of the network.
      if (network.parent !== null) return ok(repoJson(network, actor), 202);
      return validationFailed([{ resource: "Fork", code: "custom", message: "fake GitHub: the account owns the network's root repository" }], docs);
    }
    const wanted = str(body.name) ?? repo.name;
    let name = wanted;
    for (let i = 1; repos.has(repoKey(target.login, name)); i++) name = `${wanted}-${i}`;
    const onlyDefault = body.default_branch_only === true;
    const branches = new Map([...repo.branches].filter(([branch]) => !onlyDefault || branch === repo.defaultBranch));
    const creator = accountOf(actor);
    const fork: RepoRecord = {
      id: repoObject(target, name).id,
      owner: target,
      name,
      private: repo.private,
      defaultBranch: repo.defaultBranch,
      branches,
      createdBy: creator,
      createdAt: isoSeconds(clock.now()),
      parent: keyOf(repo),
      source: rootOf(repo),
      forks: [],
      pulls: [],
      collaborators: new Map(creator.type === "User" && !sameLogin(creator.login, target.login) ? [[creator.login.toLowerCase(), "admin"]] : []),
    };
    repos.set(keyOf(fork), fork);
    repo.forks.push(keyOf(fork));
    // A repository the app creates joins a "selected" installation, as on GitHub.
    if (targetInstallation.data.repository_selection === "selected" && !targetInstallation.repositories.some((n) => sameLogin(n, name))) {
      targetInstallation.repositories.push(name);
    }
    return ok(repoJson(fork, actor), 202);
  };

  const pullJson = (repo: RepoRecord, pull: PullRecord) => {
    const full = fullNameOf(repo);
    const headRepo = repos.get(pull.headRepo)!;
    const url = `${origin}/repos/${full}/pulls/${pull.number}`;
    const html = `${origin}/${full}/pull/${pull.number}`;
    return {
      url,
      id: pull.id,
      node_id: nodeId("PR_", pull.id),
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: `${origin}/repos/${full}/issues/${pull.number}`,
      number: pull.number,
      state: pull.state,
      locked: false,
      title: pull.title,
      user: pull.user,
      body: pull.body,
      created_at: pull.createdAt,
      updated_at: pull.createdAt,
      closed_at: null,
      merged_at: null,
      draft: pull.draft,
      merged: false,
      head: {
        label: `${headRepo.owner.login}:${pull.headRef}`,
        ref: pull.headRef,
        sha: headRepo.branches.get(pull.headRef) ?? pull.headSha,
        user: headRepo.owner,
        repo: repoJson(headRepo, undefined, false),
      },
      base: { label: `${repo.owner.login}:${pull.baseRef}`, ref: pull.baseRef, sha: pull.baseSha, user: repo.owner, repo: repoJson(repo, undefined, false) },
    };
  };

  const createPull = (req: FakeRequest, actor: Actor, repo: RepoRecord): FakeResponse => {
    const docs = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
    if (actor.kind === "anonymous") return gh(401, "Requires authentication", docs);
    const denied = refuse(actor, repo, { permission: "pull_requests", level: "write", user: "read" }, docs);
    if (denied) return denied;
    const body = jsonObject(req, docs);
    if (isResponse(body)) return body;
    const title = str(body.title);
    const head = str(body.head);
    const base = str(body.base);
    const missing = [
      ...(title ? [] : [{ resource: "Issue", field: "title", code: "missing_field" }]),
      ...(head ? [] : [{ resource: "PullRequest", field: "head", code: "missing_field" }]),
      ...(base ? [] : [{ resource: "PullRequest", field: "base", code: "missing_field" }]),
    ];
    if (!title || !head || !base) return validationFailed(missing, docs);
    const colon = head.indexOf(":");
    const headOwner = colon >= 0 ? head.slice(0, colon) : repo.owner.login;
    const headRef = colon >= 0 ? head.slice(colon + 1) : head;
    const headRepoName = str(body.head_repo);
    const invalidHead = () => validationFailed([{ resource: "PullRequest", field: "head", code: "invalid" }], docs);
    let headRepo: RepoRecord | undefined;
    if (headRepoName) headRepo = repos.get(repoKey(headOwner, headRepoName.includes("/") ? headRepoName.split("/")[1]! : headRepoName));
    else if (sameLogin(headOwner, repo.owner.login)) headRepo = repo;
    else {
      const candidates = [...repos.values()].filter((r) => sameLogin(r.owner.login, headOwner) && rootOf(r) === rootOf(repo));
      headRepo = candidates.find((r) => sameLogin(r.name, repo.name)) ?? candidates[0];
    }
    if (!headRepo || rootOf(headRepo) !== rootOf(repo) || refuse(actor, headRepo, { permission: "contents", level: "read" })) return invalidHead();
    const baseSha = repo.branches.get(base);
    if (!baseSha) return validationFailed([{ resource: "PullRequest", field: "base", code: "invalid" }], docs);
    const headSha = headRepo.branches.get(headRef);
    if (!headSha) return invalidHead();
    const label = `${headRepo.owner.login}:${headRef}`;
    if (repo.pulls.some((p) => p.state === "open" && p.headRepo === keyOf(headRepo) && p.headRef === headRef && p.baseRef === base)) {
      return validationFailed([{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${label}.` }], docs);
    }
    if (ancestors(baseSha).has(headSha)) {
      return validationFailed([{ resource: "PullRequest", code: "custom", message: `No commits between ${base} and ${head}` }], docs);
    }
    const pull: PullRecord = {
      number: repo.pulls.length + 1,
      id: nextPullId++,
      title,
      body: str(body.body) ?? null,
      state: "open",
      draft: body.draft === true,
      user: accountOf(actor),
      headRepo: keyOf(headRepo),
      headRef,
      headSha,
      baseRef: base,
      baseSha,
      createdAt: isoSeconds(clock.now()),
    };
    repo.pulls.push(pull);
    const json = pullJson(repo, pull);
    return ok(json, 201, { location: json.url });
  };

  const repoRoute = (req: FakeRequest, owner: string, name: string, rest: string): FakeResponse => {
    const actor = authenticateActor(req);
    if (isResponse(actor)) return actor;
    const repo = repos.get(repoKey(owner, name));
    if (!repo) return notFound();
    const { method } = req;
    let m: RegExpExecArray | null;
    if (rest === "" && method === "GET") return refuse(actor, repo, { permission: "metadata", level: "read" }) ?? ok(repoJson(repo, actor));
    if (rest === "/forks" && method === "POST") return createFork(req, actor, repo);
    if (method === "GET" && (m = /^\/git\/ref\/(.+)$/.exec(rest))) {
      const docs = "https://docs.github.com/rest/git/refs#get-a-reference";
      const denied = refuse(actor, repo, { permission: "contents", level: "read" }, docs);
      if (denied) return denied;
      const ref = decodeURIComponent(m[1]!);
      const branch = ref.startsWith("heads/") ? ref.slice("heads/".length) : undefined;
      const sha = branch !== undefined ? repo.branches.get(branch) : undefined;
      return sha ? ok(refJson(repo, branch!, sha)) : notFound(docs);
    }
    if (rest === "/git/refs" && method === "POST") return createRef(req, actor, repo);
    if ((m = /^\/contents(?:\/(.*))?$/.exec(rest))) {
      const path = decodeURIComponent(m[1] ?? "").replace(/^\/+/, "");
      if (method === "GET") return getContents(req, actor, repo, path.replace(/\/+$/, ""));
      if (method === "PUT") return putContents(req, actor, repo, path);
      return notFound();
    }
    if (rest === "/pulls" && method === "POST") return createPull(req, actor, repo);
    if (method === "GET" && (m = /^\/pulls\/(\d+)$/.exec(rest))) {
      const docs = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request";
      const denied = refuse(actor, repo, { permission: "pull_requests", level: "read" }, docs);
      if (denied) return denied;
      const pull = repo.pulls.find((p) => p.number === Number(m![1]));
      return pull ? ok(pullJson(repo, pull)) : notFound(docs);
    }
    return notFound();
  };

  // ---- routing ----
  const handle = async (req: FakeRequest): Promise<FakeResponse> => {
    const failure = failures.findIndex((f) => req.path.startsWith(f.prefix));
    if (failure >= 0) {
      const { response } = failures.splice(failure, 1)[0]!;
      return {
        status: response.status,
        headers: response.headers,
        json: response.body ?? { message: response.status >= 500 ? "Server Error" : "Error", documentation_url: DOCS },
      };
    }
    const { method, path } = req;
    let m: RegExpExecArray | null;

    if (method === "GET" && (m = /^\/apps\/([^/]+)\/installations\/new$/.exec(path))) return installFlow(req, decodeURIComponent(m[1]!));
    if (method === "POST" && path === "/login/oauth/access_token") return oauthAccessToken(req);
    if (method === "GET" && path === "/login/oauth/authorize") return authorizePage(req);
    if (method === "DELETE" && (m = /^\/applications\/([^/]+)\/(grant|token)$/.exec(path))) {
      return applicationsRoute(req, decodeURIComponent(m[1]!), m[2] as "grant" | "token");
    }

    if ((m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path))) {
      if (method !== "POST") return notFound();
      return issueInstallationToken(req, Number(m[1]));
    }
    if (path === "/app" || path.startsWith("/app/") || /^\/(repos\/[^/]+\/[^/]+|orgs\/[^/]+|users\/[^/]+)\/installation$/.test(path)) {
      const app = await authenticateApp(req);
      if ("status" in app) return app;
      if (method === "GET" && path === "/app") {
        return ok({
          id: app.appId,
          slug: app.slug,
          node_id: nodeId("A_", app.appId),
          client_id: app.clientId,
          owner: app.owner,
          name: app.name,
          description: "",
          external_url: origin,
          html_url: `${origin}/apps/${app.slug}`,
          created_at: app.createdAt,
          updated_at: app.createdAt,
          permissions: app.permissions,
          events: app.events,
          installations_count: [...installations.values()].filter((r) => !r.deleted && r.data.app_id === app.appId).length,
        });
      }
      if (method === "GET" && path === "/app/installations") {
        const list = [...installations.values()].filter((r) => !r.deleted && r.data.app_id === app.appId).map((r) => r.data);
        const { page, headers } = paginate(req, list);
        return ok(page, 200, headers);
      }
      if ((m = /^\/app\/installations\/(\d+)(\/suspended)?$/.exec(path))) {
        const installation = liveInstallation(Number(m[1]));
        if (!installation || installation.data.app_id !== app.appId) return notFound();
        if (!m[2]) {
          if (method === "GET") return ok(installation.data);
          if (method === "DELETE") {
            installation.deleted = true;
            return noContent();
          }
          return notFound();
        }
        if (method === "PUT") {
          installation.data.suspended_at ??= isoSeconds(clock.now());
          installation.data.suspended_by ??= app.owner;
          touch(installation);
          return noContent();
        }
        if (method === "DELETE") {
          installation.data.suspended_at = null;
          installation.data.suspended_by = null;
          touch(installation);
          return noContent();
        }
        return notFound();
      }
      if (method === "GET" && (m = /^\/repos\/([^/]+)\/([^/]+)\/installation$/.exec(path))) {
        const [owner, repo] = [decodeURIComponent(m[1]!).toLowerCase(), decodeURIComponent(m[2]!).toLowerCase()];
        const found = [...installations.values()].find(
          (r) =>
            !r.deleted && r.data.app_id === app.appId && r.data.account.login.toLowerCase() === owner && r.repositories.some((n) => n.toLowerCase() === repo),
        );
        return found ? ok(found.data) : notFound("https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app");
      }
      if (method === "GET" && (m = /^\/(orgs|users)\/([^/]+)\/installation$/.exec(path))) {
        const login = decodeURIComponent(m[2]!).toLowerCase();
        const found = [...installations.values()].find(
          (r) =>
            !r.deleted &&
            r.data.app_id === app.appId &&
            r.data.account.login.toLowerCase() === login &&
            (m![1] === "users" || r.data.account.type === "Organization"),
        );
        return found ? ok(found.data) : notFound();
      }
      return notFound();
    }
    if (path === "/installation/repositories" && method === "GET") {
      const auth = authenticateInstallation(req);
      if ("status" in auth) return auth;
      const repos = tokenRepositories(auth.record, auth.installation);
      const { page, headers } = paginate(req, repos);
      return ok(
        {
          total_count: repos.length,
          repository_selection: auth.record.repositories ? "selected" : auth.installation.data.repository_selection,
          repositories: page,
        },
        200,
        headers,
      );
    }
    if (path === "/installation/token" && method === "DELETE") {
      const auth = authenticateInstallation(req);
      if ("status" in auth) return auth;
      auth.record.revoked = true;
      return noContent();
    }
    if (path === "/user/installations" && method === "GET") {
      const auth = authenticateUser(req);
      if ("status" in auth) return auth;
      const user = userFor(auth.login);
      const list = [...user.installations]
        .map((id) => liveInstallation(id))
        .filter((r): r is InstallationRecord => !!r && r.data.app_id === auth.app.appId)
        .map((r) => r.data);
      const { page, headers } = paginate(req, list);
      return ok({ total_count: list.length, installations: page }, 200, headers);
    }
    if ((m = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path))) {
      return repoRoute(req, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), m[3] ?? "");
    }
    if (path === "/user" && method === "GET") {
      const auth = authenticateUser(req);
      if ("status" in auth) return auth;
      return ok({ ...userFor(auth.login).account, name: auth.login, email: null });
    }
    return notFound();
  };

  const server = await startFakeServer({
    clock,
    handle: (req) => handle(req).then((res) => ({ ...res, headers: { "x-github-request-id": randomUUID(), ...(res.headers ?? {}) } })),
  });
  origin = server.url;

  return {
    url: server.url,
    requests: server.requests,
    now: clock.now,
    setClockOffset: clock.setClockOffset,
    close: server.close,

    async createApp(options) {
      const { publicKey, privateKey } = await GENERATE_KEY_PAIR("rsa", { modulusLength: 2048 });
      const format = options.privateKeyFormat ?? "pkcs1";
      const appId = nextAppId++;
      const app: AppRecord = {
        appId,
        slug: options.slug,
        name: options.name ?? options.slug,
        privateKeyPem: privateKey.export({ type: format, format: "pem" }).toString(),
        clientId: options.clientId ?? `Iv23li${randomString(14)}`,
        clientSecret: secret(options.clientSecret ?? randomString(40, "0123456789abcdef")),
        webhookSecret: secret(options.webhookSecret ?? randomString(32)),
        setupUrl: options.setupUrl,
        callbackUrls: options.callbackUrls ? [...options.callbackUrls] : undefined,
        publicKey,
        requestOAuthOnInstall: options.requestOAuthOnInstall ?? true,
        expiringUserTokens: options.expiringUserTokens ?? true,
        permissions: options.permissions ?? { contents: "write", metadata: "read", pull_requests: "write", issues: "write" },
        events: options.events ?? ["pull_request", "push"],
        createdAt: isoSeconds(clock.now()),
        owner: accountFor(`${options.slug}-owner`, "Organization"),
      };
      if ([...apps.values()].some((a) => a.slug === app.slug)) throw new Error(`fake GitHub: slug ${app.slug} taken`);
      apps.set(appId, app);
      return {
        appId,
        slug: app.slug,
        privateKeyPem: app.privateKeyPem,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        webhookSecret: app.webhookSecret,
      };
    },

    addInstallation(options) {
      return structuredClone(createInstallation(options).data);
    },

    setNextInstall(options) {
      nextInstall = structuredClone(options);
    },

    get installations() {
      return [...installations.values()].filter((r) => !r.deleted).map(snapshot);
    },

    getInstallation(id) {
      const record = liveInstallation(id);
      return record ? snapshot(record) : undefined;
    },

    suspend(installationId) {
      const record = mustInstallation(installationId);
      record.data.suspended_at = isoSeconds(clock.now());
      record.data.suspended_by = senderFor(record);
      touch(record);
    },

    unsuspend(installationId) {
      const record = mustInstallation(installationId);
      record.data.suspended_at = null;
      record.data.suspended_by = null;
      touch(record);
    },

    get installationTokens() {
      return tokenOrder.map((token) => {
        const r = tokens.get(token)!;
        return {
          token,
          installationId: r.installationId,
          expiresAt: isoSeconds(r.expiresAtMs),
          permissions: { ...r.permissions },
          repositories: r.repositories ? [...r.repositories] : null,
          revoked: r.revoked,
        };
      });
    },

    isInstallationTokenValid(token) {
      const r = tokens.get(token);
      const installation = r ? liveInstallation(r.installationId) : undefined;
      return !!r && !!installation && !r.revoked && r.expiresAtMs > clock.now() && !installation.data.suspended_at;
    },

    expireInstallationTokens() {
      const now = clock.now();
      for (const r of tokens.values()) r.expiresAtMs = Math.min(r.expiresAtMs, now);
    },

    grantUserAccess(login, installationId) {
      mustInstallation(installationId);
      userFor(login).installations.add(installationId);
    },

    async deliverWebhook(targetUrl, options) {
      const body = JSON.stringify(options.payload);
      const payloadAppId = (options.payload as { installation?: { app_id?: unknown } } | null)?.installation?.app_id;
      const appId = options.appId ?? (typeof payloadAppId === "number" ? payloadAppId : apps.size === 1 ? [...apps.keys()][0] : undefined);
      const app = appId !== undefined ? apps.get(appId) : undefined;
      if (!app) throw new Error("fake GitHub: deliverWebhook needs appId (no app found)");
      const key = options.secret ?? app.webhookSecret;
      const deliveryId = options.deliveryId ?? randomUUID();
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/fake",
        "x-github-event": options.event,
        "x-github-delivery": deliveryId,
        "x-github-hook-id": String(app.appId + 7_000_000),
        "x-github-hook-installation-target-id": String(app.appId),
        "x-github-hook-installation-target-type": "integration",
      };
      if (options.signature !== null) {
        headers["x-hub-signature-256"] = options.signature ?? `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;
        headers["x-hub-signature"] = `sha1=${createHmac("sha1", key).update(body).digest("hex")}`;
      }
      const response = await fetch(targetUrl, { method: "POST", headers, body });
      return { status: response.status, body: await response.text(), deliveryId };
    },

    installationEvent(installationId, action, options = {}) {
      const record = installations.get(installationId);
      if (!record) throw new Error(`fake GitHub: no installation ${installationId}`);
      const sender = senderFor(record);
      switch (action) {
        case "deleted":
          record.deleted = true;
          break;
        case "suspend":
          record.data.suspended_at = isoSeconds(clock.now());
          record.data.suspended_by = sender;
          touch(record);
          break;
        case "unsuspend":
          record.data.suspended_at = null;
          record.data.suspended_by = null;
          touch(record);
          break;
        case "new_permissions_accepted":
          if (options.permissions) record.data.permissions = { ...options.permissions };
          if (options.events) record.data.events = [...options.events];
          touch(record);
          break;
        case "created":
          break;
      }
      const payload: Record<string, unknown> = {
        action,
        installation: structuredClone(record.data),
        requester: null,
        sender: { ...sender },
      };
      if (action === "created" || action === "deleted" || action === "new_permissions_accepted") {
        payload.repositories = record.repositories.map((n) => {
          const r = repoObject(record.data.account, n);
          return { id: r.id, node_id: r.node_id, name: r.name, full_name: r.full_name, private: r.private };
        });
      }
      return payload;
    },

    installationRepositoriesEvent(installationId, change) {
      const record = mustInstallation(installationId);
      const added = change.added ?? [];
      const removed = change.removed ?? [];
      const short = (n: string) => {
        const r = repoObject(record.data.account, n);
        return { id: r.id, node_id: r.node_id, name: r.name, full_name: r.full_name, private: r.private };
      };
      const removedObjects = removed.map(short);
      record.repositories = record.repositories.filter((r) => !removed.some((x) => x.toLowerCase() === r.toLowerCase()));
      for (const name of added) if (!record.repositories.some((r) => r.toLowerCase() === name.toLowerCase())) record.repositories.push(name);
      touch(record);
      return {
        action: added.length ? "added" : "removed",
        installation: structuredClone(record.data),
        repository_selection: record.data.repository_selection,
        repositories_added: added.map(short),
        repositories_removed: removedObjects,
        requester: null,
        sender: { ...senderFor(record) },
      };
    },

    signInAs(login) {
      signedIn = login;
      userFor(login);
    },

    denyNextAuthorization() {
      denyNextAuthorization = true;
    },

    userTokenCount(login) {
      const now = clock.now();
      return [...userTokens.values()].filter((t) => sameLogin(t.login, login) && !t.revoked && (t.expiresAtMs === null || t.expiresAtMs > now)).length;
    },

    isUserTokenValid(token) {
      const t = userTokens.get(token);
      return !!t && !t.revoked && (t.expiresAtMs === null || t.expiresAtMs > clock.now());
    },

    isRefreshTokenSpent(token) {
      return refreshTokens.get(token)?.spent ?? false;
    },

    isRefreshTokenValid(token) {
      const r = refreshTokens.get(token);
      return !!r && !r.spent && !r.revoked && r.expiresAtMs > clock.now();
    },

    expireUserTokens(login) {
      const now = clock.now();
      for (const t of userTokens.values()) {
        if (login === undefined || sameLogin(t.login, login)) t.expiresAtMs = Math.min(t.expiresAtMs ?? now, now);
      }
    },

    createRepository(options) {
      const owner = accounts.get(options.owner.toLowerCase()) ?? accountFor(options.owner, options.ownerType ?? "Organization");
      if (owner.type === "User") userFor(owner.login);
      const key = repoKey(owner.login, options.name);
      if (repos.has(key)) throw new Error(`fake GitHub: repository ${owner.login}/${options.name} exists`);
      const creator = options.createdBy ? accountFor(options.createdBy, "User") : owner;
      const files = options.files ?? { "README.md": `# ${options.name}\n` };
      const changes = new Map(Object.entries(files).map(([path, content]) => [path, storeBlob(Buffer.from(content, "utf8"))]));
      const commit = makeCommit(undefined, changes, "Initial commit", creator);
      const defaultBranch = options.defaultBranch ?? "main";
      repos.set(key, {
        id: repoObject(owner, options.name).id,
        owner,
        name: options.name,
        private: options.private ?? false,
        defaultBranch,
        branches: new Map([[defaultBranch, commit.sha]]),
        createdBy: creator,
        createdAt: isoSeconds(clock.now()),
        parent: null,
        source: null,
        forks: [],
        pulls: [],
        collaborators: new Map(),
      });
      return repoObject(owner, options.name);
    },

    grantRepositoryAccess(login, fullName, level) {
      const repo = repos.get(fullName.toLowerCase());
      if (!repo) throw new Error(`fake GitHub: no repository ${fullName}`);
      userFor(login);
      repo.collaborators.set(login.toLowerCase(), level);
    },

    repository(fullName) {
      const repo = repos.get(fullName.toLowerCase());
      if (!repo) return undefined;
      const nameOf = (key: string) => fullNameOf(repos.get(key)!);
      return {
        fullName: fullNameOf(repo),
        owner: repo.owner.login,
        private: repo.private,
        defaultBranch: repo.defaultBranch,
        createdBy: repo.createdBy.login,
        fork: repo.parent !== null,
        parent: repo.parent ? nameOf(repo.parent) : null,
        source: repo.source ? nameOf(repo.source) : null,
        forks: repo.forks.map(nameOf),
        branches: Object.fromEntries(
          [...repo.branches].map(([branch, sha]) => {
            const commit = commits.get(sha)!;
            const files = Object.fromEntries([...commit.files].map(([path, blob]) => [path, blobs.get(blob)!.toString("utf8")]));
            return [branch, { sha, message: commit.message, author: commit.author.login, files }];
          }),
        ),
        pulls: repo.pulls.map((p) => ({
          number: p.number,
          title: p.title,
          body: p.body,
          state: p.state,
          user: p.user.login,
          headRepo: nameOf(p.headRepo),
          headRef: p.headRef,
          headSha: p.headSha,
          baseRef: p.baseRef,
          baseSha: p.baseSha,
        })),
      };
    },

    failNext(pathPrefix, response) {
      failures.push({ prefix: pathPrefix, response });
    },
  };
}
