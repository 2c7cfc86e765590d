import { setTimeout as delay } from "node:timers/promises";
import { createAppAuth } from "@octokit/auth-app";
import { request as octokitRequest } from "@octokit/request";
import { SignJWT } from "jose";
import { BadInputError, DomainError, NotFoundError, RateLimitedError } from "../errors.ts";
import { createLogger, type Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { isRecord, messageCode, num, str } from "../providers/http.ts";
import { ProviderError } from "../providers/provider.ts";
import type { GitHubApp, GitHubAppClient, InstallationTarget, MintRequest, MintedToken } from "./types.ts";

// One named GitHub App's view of the GitHub API: installation tokens (no caching here: the caller
// caches), installation discovery (cached), token revocation.
//
// The app JWT is RS256, signed with jose from the app's KeyObject (no PEM string is kept), iat 60 s in
// the past and exp 9 minutes ahead; @octokit/auth-app's hook puts it on app routes and, when GitHub
// answers that exp/iat is off, retries once with the difference taken from GitHub's Date header. The
// difference is remembered, so later JWTs start corrected. The app is read through a getter on every
// call: a rotated key (a new GitHubApp object from the registry) gets a fresh auth at once.
//
// Failures: 5xx and network errors are retried (5 attempts, exponential backoff from 500 ms, capped at
// 5 s, with jitter); 429 and secondary-rate-limit 403 wait for Retry-After / X-RateLimit-Reset when that
// fits before the request's deadline, else RATE_LIMITED; other answers fail at once as Keyplane's
// codes. Messages and logs carry app names, routes, installation ids and GitHub's error codes, never a
// token or a JWT.

const API_VERSION = "2022-11-28";
const MINT_ROUTE = "POST /app/installations/{installation_id}/access_tokens";
const REVOKE_ROUTE = "DELETE /installation/token";

export interface GitHubAppClientOptions {
  apiUrl: string;
  /** Timeout of each HTTP attempt; also the deadline of a call that names none. */
  timeoutMs: number;
  metrics?: Metrics;
  logger?: Logger;
  fetch?: typeof fetch;
  /** Waits between attempts (backoff, Retry-After). Tests pass a fast one. */
  sleep?: (ms: number) => Promise<void>;
  /** Default 5 attempts, 500 ms base, 5 s cap. */
  retry?: { attempts?: number; baseMs?: number; capMs?: number };
  /** How long a discovered installation id is reused (default 10 minutes), and how many are kept (default 1000). */
  discovery?: { ttlMs?: number; maxEntries?: number };
}

type AppSource = GitHubApp | (() => GitHubApp);

// ---- errors ----

/** PROVIDER_ERROR from a GitHub App call: a ProviderError (kind drives Keyplane's reaction) that names the app. */
export class GitHubAppError extends ProviderError {
  constructor(
    readonly app: string,
    providerCode: string,
    kind: "rejected" | "transient" | "invalid",
    httpStatus: number | undefined,
    message: string,
  ) {
    super("github", providerCode, kind, httpStatus);
    this.name = "GitHubAppError";
    this.message = message;
    this.extensions.app = app;
  }
}

interface Upstream {
  status?: number;
  providerCode: string;
  retryAfter?: number;
}
const upstreamOf = new WeakMap<object, Upstream>();

function tag<E extends DomainError>(error: E, app: string, upstream: Upstream): E {
  upstreamOf.set(error, upstream);
  Object.assign(error.extensions, { platform: "github", app, providerCode: upstream.providerCode });
  return error;
}

/**
 * Any error from a client call as a ProviderError, for callers that speak InstallationProvider:
 * NOT_FOUND -> rejected (404), BAD_USER_INPUT -> invalid (422), RATE_LIMITED -> transient (429/403).
 */
export function toProviderError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  if (error instanceof DomainError) {
    const upstream = upstreamOf.get(error);
    const code = upstream?.providerCode ?? error.code.toLowerCase();
    let converted: ProviderError;
    if (error.code === "NOT_FOUND") converted = new ProviderError("github", code, "rejected", upstream?.status ?? 404);
    else if (error.code === "RATE_LIMITED") converted = new ProviderError("github", code, "transient", upstream?.status ?? 429);
    else converted = new ProviderError("github", code, "invalid", upstream?.status);
    converted.message = error.message;
    Object.assign(converted.extensions, error.extensions);
    return converted;
  }
  return new ProviderError("github", "app_authentication_failed", "invalid");
}

// ---- the app-authenticated request ----

export interface AppRequestResponse {
  status: number;
  headers: Record<string, string | number | undefined>;
  data: unknown;
}

export interface AppRequester {
  /** The app as it is now (the latest key). */
  app(): GitHubApp;
  /** A call on an app route (`GET /app/installations/{installation_id}`…) with the app JWT; octokit's errors as they are. */
  appRequest(route: string, parameters?: Record<string, unknown>): Promise<AppRequestResponse>;
  /** A call without the app JWT (the caller sets authorization). */
  request(route: string, parameters?: Record<string, unknown>): Promise<AppRequestResponse>;
}

/**
 * The app JWT machinery one app's client and install provider use: jose-signed RS256 JWTs from the
 * current KeyObject, auth-app's clock-skew retry with the difference remembered, and every HTTP attempt
 * counted in metrics with its route template and the rate limit GitHub reports.
 */
export function createAppRequester(source: AppSource, options: Pick<GitHubAppClientOptions, "apiUrl" | "timeoutMs" | "metrics" | "logger" | "fetch">): AppRequester {
  const getApp = typeof source === "function" ? source : () => source;
  const logger = options.logger ?? createLogger({ level: "silent" });
  const baseFetch = options.fetch ?? globalThis.fetch;
  const apiUrl = options.apiUrl.replace(/\/+$/, "");
  const apiPath = new URL(apiUrl).pathname.replace(/\/+$/, "");
  let appName = "unknown";

  const instrumentedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const pathname = apiPath && url.pathname.startsWith(apiPath) ? url.pathname.slice(apiPath.length) : url.pathname;
    const route = routeTemplate(method, pathname);
    const app = appName;
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const started = performance.now();
    const observe = (status: string, outcome: string) => {
      options.metrics?.githubUpstreamRequests.inc({ app, route, outcome });
      options.metrics?.githubUpstreamDuration.observe({ app, route, status }, (performance.now() - started) / 1000);
    };
    let response: Response;
    try {
      response = await baseFetch(input, { ...init, signal, redirect: "manual" });
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      observe("error", name === "TimeoutError" || name === "AbortError" ? "timeout" : "network_error");
      throw error;
    }
    let outcome = outcomeOf(response.status);
    if (response.status === 403) {
      const body = await response
        .clone()
        .text()
        .catch(() => "");
      if (isRateLimit(response.headers.get("x-ratelimit-remaining") ?? undefined, response.headers.get("retry-after") ?? undefined, body)) outcome = "rate_limited";
    }
    observe(String(response.status), outcome);
    const remaining = Number(response.headers.get("x-ratelimit-remaining") ?? Number.NaN);
    // Every call made here is an app-JWT call but revocation (authenticated with the token itself).
    if (Number.isFinite(remaining) && route !== REVOKE_ROUTE) options.metrics?.githubRateLimitRemaining.set({ app, installation: "0" }, remaining);
    return response;
  };

  const request = octokitRequest.defaults({
    baseUrl: apiUrl,
    headers: { "x-github-api-version": API_VERSION, "user-agent": "keyplane" },
    request: { fetch: instrumentedFetch },
  });

  // GitHub's clock minus ours, in seconds, as auth-app last measured it from a Date header.
  let timeDifference = 0;
  let current: { app: GitHubApp; appRequest: typeof request } | undefined;

  function appRequestFor(app: GitHubApp): typeof request {
    if (current?.app === app) return current.appRequest;
    const auth = createAppAuth({
      appId: app.appId,
      async createJwt(_appId: string | number, difference?: number) {
        if (difference !== undefined) timeDifference = difference;
        return signAppJwt(app, timeDifference);
      },
      request,
      log: {
        warn: (message: string) => logger.warn({ app: app.name }, `GitHub App ${app.name}: ${String(message).replace(/^\[@octokit\/auth-app\] /, "")}`),
      },
    });
    current = { app, appRequest: request.defaults({ request: { hook: auth.hook } }) };
    return current.appRequest;
  }

  const appNow = () => {
    const app = getApp();
    appName = app.name;
    return app;
  };

  return {
    app: appNow,
    appRequest: (route, parameters) => appRequestFor(appNow())(route, parameters) as Promise<AppRequestResponse>,
    request: (route, parameters) => {
      appNow();
      return request(route, parameters) as Promise<AppRequestResponse>;
    },
  };
}

/** The app JWT: RS256 over { iat: now - 60 s, exp: now + 9 min, iss: app id or client id }, now corrected by GitHub's clock. */
export async function signAppJwt(app: GitHubApp, timeDifferenceSeconds = 0): Promise<{ jwt: string; expiresAt: string }> {
  const now = Math.floor(Date.now() / 1000) + timeDifferenceSeconds;
  const exp = now + 540;
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256", typ: "JWT" })
    .setIssuer(app.appId)
    .setIssuedAt(now - 60)
    .setExpirationTime(exp)
    .sign(app.privateKey);
  return { jwt, expiresAt: new Date(exp * 1000).toISOString() };
}

// The routes this module calls, as templates for metric labels (a filled URL would be unbounded).
const ROUTES = [
  "POST /app/installations/{installation_id}/access_tokens",
  "GET /app/installations/{installation_id}",
  "DELETE /app/installations/{installation_id}",
  "PUT /app/installations/{installation_id}/suspended",
  "DELETE /app/installations/{installation_id}/suspended",
  "GET /app/installations",
  "GET /app",
  "GET /repos/{owner}/{repo}/installation",
  "GET /orgs/{org}/installation",
  "GET /users/{username}/installation",
  "DELETE /installation/token",
  "GET /installation/repositories",
  "GET /user/installations",
].map((template) => {
  const [method, path] = template.split(" ") as [string, string];
  return { template, method, regex: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`) };
});

export function routeTemplate(method: string, pathname: string): string {
  const found = ROUTES.find((r) => r.method === method && r.regex.test(pathname));
  return found ? found.template : `${method} (other)`;
}

function outcomeOf(status: number): string {
  if (status < 400) return "success";
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 422) return "unprocessable";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "server_error";
  return "client_error";
}

function isRateLimit(remaining: string | undefined, retryAfter: string | undefined, message: string): boolean {
  return remaining === "0" || retryAfter !== undefined || /rate limit/i.test(message);
}

// ---- the client ----

interface Failure {
  status?: number;
  headers: Record<string, string>;
  message?: string;
  /** timeout | network_error for failures without an answer. */
  transport?: "timeout" | "network_error";
}

function failureOf(error: unknown): Failure | undefined {
  if (!isRecord(error)) return undefined;
  const response = isRecord(error.response) ? error.response : undefined;
  if (response && typeof response.status === "number") {
    const headers: Record<string, string> = {};
    if (isRecord(response.headers)) for (const [k, v] of Object.entries(response.headers)) if (v !== undefined) headers[k.toLowerCase()] = String(v);
    const data = isRecord(response.data) ? response.data : {};
    return { status: response.status, headers, message: str(data.message) };
  }
  // @octokit/request: a failed fetch is status 500 without a response; an abort is the AbortError itself.
  if (typeof error.status === "number" || (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError"))) {
    const cause = error.cause instanceof Error ? error.cause.name : error instanceof Error ? error.name : "";
    return { headers: {}, transport: cause === "TimeoutError" || cause === "AbortError" ? "timeout" : "network_error" };
  }
  return undefined;
}

interface CallContext {
  route: string;
  deadline: number;
  /** Turns a final (non-retried) HTTP failure into Keyplane's error. */
  refuse(failure: Failure & { status: number }, code: string): Error;
}

/**
 * `createGitHubAppClient(app, options)`: `app` is a GitHubApp or a getter of the current one (the
 * registry's latest, so rotated keys are used at once).
 */
export function createGitHubAppClient(source: AppSource, options: GitHubAppClientOptions): GitHubAppClient {
  const requester = createAppRequester(source, options);
  const logger = options.logger ?? createLogger({ level: "silent" });
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const attempts = options.retry?.attempts ?? 5;
  const baseMs = options.retry?.baseMs ?? 500;
  const capMs = options.retry?.capMs ?? 5_000;
  const ttlMs = options.discovery?.ttlMs ?? 10 * 60_000;
  const maxEntries = options.discovery?.maxEntries ?? 1000;
  const discovered = new Map<string, { installationId: number; expiresAt: number; appId: string }>();
  const inflight = new Map<string, Promise<number>>();
  const appName = () => requester.app().name;

  async function call(context: CallContext, send: () => Promise<AppRequestResponse>): Promise<AppRequestResponse> {
    const app = appName();
    let failures = 0;
    let waits = 0;
    for (;;) {
      let failure: Failure | undefined;
      try {
        return await send();
      } catch (error) {
        if (error instanceof DomainError) throw error;
        failure = failureOf(error);
        if (!failure) {
          // Not an HTTP answer nor a network failure: the JWT could not be made (the key refused to sign).
          logger.error({ app, route: context.route, error: error instanceof Error ? error.name : "error" }, `GitHub App ${app}: the app JWT could not be signed`);
          throw new GitHubAppError(app, "app_authentication_failed", "invalid", undefined, `GitHub App ${app}: the app JWT could not be signed with its private key`);
        }
      }
      const status = failure.status;
      const code = status === undefined ? failure.transport! : messageCode(failure.message, `http_${status}`);
      if (status === undefined || status >= 500) {
        failures++;
        const wait = Math.min(capMs, baseMs * 2 ** (failures - 1)) * (0.5 + Math.random() * 0.5);
        if (failures >= attempts || Date.now() + wait > context.deadline) {
          const what = status === undefined ? (code === "timeout" ? "timed out" : "could not be reached") : `failed (HTTP ${status})`;
          throw new GitHubAppError(app, code, "transient", status, `GitHub App ${app}: GitHub ${what} on ${context.route}, ${failures} attempt${failures === 1 ? "" : "s"}`);
        }
        logger.warn({ app, route: context.route, status, providerCode: code, attempt: failures, waitMs: Math.round(wait) }, `GitHub App ${app}: GitHub failed; retrying`);
        await sleep(wait);
        continue;
      }
      if (status === 429 || (status === 403 && isRateLimit(failure.headers["x-ratelimit-remaining"], failure.headers["retry-after"], failure.message ?? ""))) {
        const wait = rateLimitWait(failure.headers);
        if (waits < 3 && Date.now() + wait <= context.deadline) {
          waits++;
          logger.warn({ app, route: context.route, status, waitMs: wait }, `GitHub App ${app}: rate limited by GitHub; waiting`);
          await sleep(wait);
          continue;
        }
        const retryAfter = Math.max(1, Math.ceil(wait / 1000));
        logger.warn({ app, route: context.route, status, retryAfter }, `GitHub App ${app}: rate limited by GitHub beyond the request's deadline`);
        throw tag(new RateLimitedError(`GitHub App ${app}: GitHub's rate limit is exhausted (${context.route}); retry after ${retryAfter} s`, retryAfter), app, { status, providerCode: code, retryAfter });
      }
      throw context.refuse({ ...failure, status }, code);
    }
  }

  /** 401/403 and other refusals common to every app route. */
  function refused(app: string, failure: Failure & { status: number }, code: string, subject?: string): Error {
    const { status } = failure;
    const appId = requester.app().appId;
    if (status === 401) {
      const hint = /expiration_time|issued_at/.test(code)
        ? "its JWT's times even after correcting for GitHub's clock"
        : `its JWT: wrong private key or app id (${appId})?`;
      return new GitHubAppError(app, code, "rejected", status, `GitHub App ${app}: GitHub refused ${hint} (HTTP 401 ${code})`);
    }
    if (status === 403) {
      if (/suspended/.test(code)) return new GitHubAppError(app, code, "rejected", status, `GitHub App ${app}: ${subject ?? "the installation"} is suspended (HTTP 403)`);
      return new GitHubAppError(app, code, "rejected", status, `GitHub App ${app}: GitHub refused access${subject ? ` to ${subject}` : ""} (HTTP 403 ${code})`);
    }
    return new GitHubAppError(app, code, "invalid", status, `GitHub App ${app}: GitHub refused the request${subject ? ` for ${subject}` : ""} (HTTP ${status} ${code})`);
  }

  function deadlineOf(deadline: number | undefined): number {
    return deadline ?? Date.now() + options.timeoutMs;
  }

  // ---- discovery ----

  function remember(key: string, installationId: number, appId: string) {
    discovered.delete(key);
    discovered.set(key, { installationId, expiresAt: Date.now() + ttlMs, appId });
    while (discovered.size > maxEntries) discovered.delete(discovered.keys().next().value!);
  }

  function forgetInstallation(installationId: number) {
    for (const [key, entry] of discovered) if (entry.installationId === installationId) discovered.delete(key);
  }

  async function lookup(app: string, route: string, parameters: Record<string, string>, subject: string, deadline: number): Promise<number | undefined> {
    try {
      const { data } = await call(
        {
          route,
          deadline,
          refuse: (failure, code) => {
            if (failure.status === 404) return tag(new NotFoundError(subject), app, { status: 404, providerCode: code });
            return refused(app, failure, code, subject);
          },
        },
        () => requester.appRequest(route, parameters),
      );
      return installationIdOf(app, data);
    } catch (error) {
      if (error instanceof DomainError && error.code === "NOT_FOUND") return undefined;
      throw error;
    }
  }

  async function discover(target: InstallationTarget, deadline: number): Promise<{ key: string; find: () => Promise<number> }> {
    const app = appName();
    if (target.repository !== undefined) {
      const match = /^([A-Za-z0-9_.-]{1,39})\/([A-Za-z0-9_.-]{1,100})$/.exec(target.repository.trim());
      if (!match) throw tag(new BadInputError("repository: owner/name expected", "repository"), app, { providerCode: "invalid_repository" });
      const [owner, repo] = [match[1]!, match[2]!];
      return {
        key: `repo:${owner.toLowerCase()}/${repo.toLowerCase()}`,
        find: async () => {
          const id = await lookup(app, "GET /repos/{owner}/{repo}/installation", { owner, repo }, `installation of GitHub App ${app} on repository ${owner}/${repo}`, deadline);
          if (id === undefined) throw notInstalled(app, `repository ${owner}/${repo}`);
          return id;
        },
      };
    }
    if (target.owner !== undefined) {
      const owner = target.owner.trim();
      if (!/^[A-Za-z0-9_.-]{1,39}$/.test(owner)) throw tag(new BadInputError("owner: a GitHub account login expected", "owner"), app, { providerCode: "invalid_owner" });
      return {
        key: `owner:${owner.toLowerCase()}`,
        find: async () => {
          const subject = `installation of GitHub App ${app} on account ${owner}`;
          const id =
            (await lookup(app, "GET /orgs/{org}/installation", { org: owner }, subject, deadline)) ??
            (await lookup(app, "GET /users/{username}/installation", { username: owner }, subject, deadline));
          if (id === undefined) throw notInstalled(app, `account ${owner}`);
          return id;
        },
      };
    }
    return {
      key: "only",
      find: async () => {
        const route = "GET /app/installations";
        const { data } = await call({ route, deadline, refuse: (failure, code) => refused(app, failure, code) }, () => requester.appRequest(route, { per_page: 2 }));
        const list = Array.isArray(data) ? data : [];
        if (list.length === 0) throw tag(new NotFoundError(`installation of GitHub App ${app} (it is installed nowhere)`), app, { status: 404, providerCode: "no_installation" });
        if (list.length > 1) {
          throw tag(new BadInputError(`GitHub App ${app} has several installations: name the owner or the repository`, "owner"), app, { providerCode: "several_installations" });
        }
        return installationIdOf(app, list[0]);
      },
    };
  }

  function notInstalled(app: string, where: string) {
    const error = tag(new NotFoundError(`installation of GitHub App ${app} on ${where}`), app, { status: 404, providerCode: "not_found" });
    error.message = `GitHub App ${app} is not installed on ${where} (no installation found)`;
    return error;
  }

  return {
    get app() {
      return appName();
    },

    async resolveInstallation(target, deadline) {
      if (target.installationId !== undefined) return checkInstallationId(appName(), target.installationId);
      const { key, find } = await discover(target, deadlineOf(deadline));
      const appId = requester.app().appId;
      const cached = discovered.get(key);
      if (cached && cached.expiresAt > Date.now() && cached.appId === appId) {
        discovered.delete(key);
        discovered.set(key, cached);
        return cached.installationId;
      }
      const pending = inflight.get(key);
      if (pending) return pending;
      const lookupPromise = find()
        .then((installationId) => {
          remember(key, installationId, appId);
          return installationId;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, lookupPromise);
      return lookupPromise;
    },

    async mint(mintRequest: MintRequest): Promise<MintedToken> {
      const app = appName();
      const installationId = checkInstallationId(app, mintRequest.installationId);
      const body: Record<string, unknown> = { installation_id: installationId };
      const names = mintRequest.repositories;
      if (names !== undefined) {
        if (!Array.isArray(names) || names.length === 0) throw tag(new BadInputError("repositories: name at least one repository, or leave it out for all of them", "repositories"), app, { providerCode: "invalid_repositories" });
        for (const name of names) {
          if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
            throw tag(new BadInputError("repositories: repository names without the owner expected (letters, digits, . _ -)", "repositories"), app, { providerCode: "invalid_repositories" });
          }
        }
        body.repositories = [...names];
      }
      const ids = mintRequest.repositoryIds;
      if (ids !== undefined) {
        if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => Number.isSafeInteger(id) && id > 0)) {
          throw tag(new BadInputError("repositoryIds: positive repository ids expected, at least one", "repositoryIds"), app, { providerCode: "invalid_repository_ids" });
        }
        body.repository_ids = [...ids];
      }
      if (mintRequest.permissions !== undefined) {
        const permissions = mintRequest.permissions;
        if (!isRecord(permissions) || !Object.entries(permissions).every(([k, v]) => /^[a-z][a-z0-9_]{0,63}$/.test(k) && (v === "read" || v === "write" || v === "admin"))) {
          throw tag(new BadInputError("permissions: a map of permission name to read, write or admin expected", "permissions"), app, { providerCode: "invalid_permissions" });
        }
        body.permissions = { ...permissions };
      }
      const subject = `installation ${installationId} of GitHub App ${app}`;
      const { data } = await call(
        {
          route: MINT_ROUTE,
          deadline: deadlineOf(mintRequest.deadline),
          refuse: (failure, code) => {
            if (failure.status === 404) {
              forgetInstallation(installationId);
              return tag(new NotFoundError(subject), app, { status: 404, providerCode: code });
            }
            if (failure.status === 422) return lacking(app, installationId, mintRequest, failure.message ?? "", code);
            return refused(app, failure, code, `installation ${installationId}`);
          },
        },
        () => requester.appRequest(MINT_ROUTE, body),
      );
      return mintedToken(app, installationId, data);
    },

    async revokeToken(token) {
      const app = appName();
      if (typeof token !== "string" || token === "" || /[\s\0]/.test(token)) throw tag(new BadInputError("token: not an installation token", "token"), app, { providerCode: "invalid_token" });
      try {
        await call(
          { route: REVOKE_ROUTE, deadline: deadlineOf(undefined), refuse: (failure, code) => refused(app, failure, code, "the token's installation") },
          () => requester.request(REVOKE_ROUTE, { headers: { authorization: `token ${token}` } }),
        );
      } catch (error) {
        // 401: the token is already revoked or expired, which is what was asked.
        if (error instanceof ProviderError && error.httpStatus === 401) return;
        throw error;
      }
    },
  };
}

function checkInstallationId(app: string, installationId: unknown): number {
  if (typeof installationId !== "number" || !Number.isSafeInteger(installationId) || installationId <= 0) {
    throw tag(new BadInputError("installationId: a positive integer expected", "installationId"), app, { providerCode: "invalid_installation_id" });
  }
  return installationId;
}

function installationIdOf(app: string, data: unknown): number {
  const id = isRecord(data) ? num(data.id) : undefined;
  if (id === undefined || !Number.isSafeInteger(id) || id <= 0) throw new GitHubAppError(app, "invalid_response", "transient", undefined, `GitHub App ${app}: GitHub's installation answer has no id`);
  return id;
}

/** 422 on a token request: a repository or permission the installation does not have. */
function lacking(app: string, installationId: number, request: MintRequest, message: string, code: string): Error {
  const asked: string[] = [];
  if (/permission/i.test(message) && request.permissions) {
    const list = Object.entries(request.permissions).map(([k, v]) => `${k}:${v}`).join(", ");
    return tag(new BadInputError(`permissions: installation ${installationId} of GitHub App ${app} does not grant ${list} (GitHub: ${code})`, "permissions"), app, { status: 422, providerCode: code });
  }
  if (request.repositories?.length) asked.push(...request.repositories);
  if (request.repositoryIds?.length) asked.push(...request.repositoryIds.map((id) => `id ${id}`));
  if (/repositor/i.test(message) && asked.length) {
    const field = request.repositories?.length ? "repositories" : "repositoryIds";
    const which = asked.length === 1 ? `repository ${asked[0]}` : `every one of the repositories ${asked.join(", ")}`;
    return tag(new BadInputError(`${field}: installation ${installationId} of GitHub App ${app} does not cover ${which} (it does not exist or is not accessible to the installation)`, field), app, { status: 422, providerCode: code });
  }
  return tag(new BadInputError(`installation ${installationId} of GitHub App ${app}: GitHub refused the token request (${code})`), app, { status: 422, providerCode: code });
}

function mintedToken(app: string, installationId: number, data: unknown): MintedToken {
  const body = isRecord(data) ? data : {};
  const token = str(body.token);
  const expiresAt = typeof body.expires_at === "string" ? new Date(body.expires_at) : undefined;
  if (!token || !expiresAt || Number.isNaN(expiresAt.getTime())) {
    throw new GitHubAppError(app, "invalid_response", "transient", undefined, `GitHub App ${app}: GitHub's token answer for installation ${installationId} is incomplete`);
  }
  const permissions: Record<string, string> = {};
  if (isRecord(body.permissions)) for (const [k, v] of Object.entries(body.permissions)) if (typeof v === "string") permissions[k] = v;
  const repositories = Array.isArray(body.repositories)
    ? body.repositories.map((r) => (isRecord(r) ? str(r.full_name) : undefined)).filter((r): r is string => r !== undefined)
    : null;
  return {
    token,
    expiresAt,
    installationId,
    repositorySelection: body.repository_selection === "selected" ? "selected" : "all",
    repositories,
    permissions,
  };
}

/** How long GitHub asks to wait, in ms: Retry-After, else X-RateLimit-Reset (on GitHub's clock), else a minute. */
function rateLimitWait(headers: Record<string, string>): number {
  const serverNow = Date.parse(headers.date ?? "") || Date.now();
  const retryAfter = headers["retry-after"];
  if (retryAfter !== undefined) {
    if (/^\d+$/.test(retryAfter.trim())) return Number(retryAfter.trim()) * 1000;
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - serverNow);
  }
  const reset = Number(headers["x-ratelimit-reset"]);
  if (headers["x-ratelimit-remaining"] === "0" && Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - serverNow) + 1000;
  // GitHub: without either header, wait at least a minute.
  return 60_000;
}
