import { createHmac, generateKeyPair as generateKeyPairCallback, randomUUID, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { compactVerify, decodeJwt, decodeProtectedHeader } from "jose";
import {
  authorization,
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
  type: "Organization" | "User";
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
}

interface RefreshRecord {
  login: string;
  appId: number;
  expiresAtMs: number;
  spent: boolean;
}

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
  const failures: Array<{ prefix: string; response: { status: number; body?: unknown; headers?: Record<string, string> } }> = [];
  let nextInstall: NextInstallOptions | undefined;
  let nextAppId = 100_000 + Math.floor(Math.random() * 800_000);
  let nextInstallationId = 40_000_000 + Math.floor(Math.random() * 1_000_000);
  let nextAccountId = 1_000_000 + Math.floor(Math.random() * 1_000_000);
  let nextRepoId = 600_000_000 + Math.floor(Math.random() * 1_000_000);
  let origin = "";

  const nowSec = () => Math.floor(clock.now() / 1000);

  const accountFor = (login: string, type: "Organization" | "User"): GitHubAccount => {
    const key = login.toLowerCase();
    let account = accounts.get(key);
    if (!account) {
      const id = nextAccountId++;
      account = {
        login,
        id,
        node_id: nodeId(type === "Organization" ? "O_" : "U_", id),
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
    return {
      id,
      node_id: nodeId("R_", id),
      name,
      full_name: fullName,
      private: true,
      owner,
      html_url: `${origin}/${fullName}`,
      url: `${origin}/repos/${fullName}`,
      default_branch: "main",
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
      target_type: account.type,
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
      refreshTokens.set(refresh, { login, appId: app.appId, expiresAtMs: clock.now() + 15_897_600_000, spent: false });
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
      if (!record || record.spent || record.appId !== app.appId || record.expiresAtMs <= clock.now()) {
        return oauthError(req, "bad_refresh_token", "The refresh token passed is incorrect or expired.", "bad-refresh-token");
      }
      record.spent = true;
      return issueUserToken(req, app, record.login);
    }
    if (params.redirect_uri !== undefined && app.callbackUrls && !app.callbackUrls.some((cb) => underCallback(params.redirect_uri!, cb))) {
      return oauthError(req, "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "redirect-uri-mismatch");
    }
    const code = params.code ? codes.get(params.code) : undefined;
    if (!code || code.used || code.appId !== app.appId || code.expiresAtMs <= clock.now()) {
      return oauthError(req, "bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code");
    }
    code.used = true;
    return issueUserToken(req, app, code.login);
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

    failNext(pathPrefix, response) {
      failures.push({ prefix: pathPrefix, response });
    },
  };
}
