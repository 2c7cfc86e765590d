import { createAppAuth } from "@octokit/auth-app";
import { request as octokitRequest } from "@octokit/request";
import { createLogger, type Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { signAppJwt } from "./appJwt.ts";
import { isRateLimit } from "./rateLimit.ts";
import type { GitHubApp } from "./types.ts";
import { outcomeOf, REVOKE_ROUTE, routeTemplate } from "./upstreamRoutes.ts";

// The requester: every HTTP call Keyplane makes to the GitHub API on behalf of a GitHub App goes
// through one of these (the installation-token client and the install provider share it).
//
// The app JWT (appJwt.ts) is put on app routes by @octokit/auth-app's hook, which, when GitHub answers
// that exp/iat is off, retries once with the difference taken from GitHub's Date header. The difference
// is remembered, so later JWTs start corrected. The app is read through a getter on every call: a rotated
// key (a new GitHubApp object from the registry) gets a fresh auth at once. Each HTTP attempt has its own
// timeout and is counted in metrics by route template, with the rate limit GitHub reports. Nothing here
// retries beyond auth-app's clock-skew retry, and nothing here logs a token or a JWT.

const API_VERSION = "2022-11-28";

/** A GitHubApp, or a getter of the current one (the registry's latest, so rotated keys are used at once). */
export type AppSource = GitHubApp | (() => GitHubApp);

export interface AppRequesterOptions {
  apiUrl: string;
  /** Timeout of each HTTP attempt. */
  timeoutMs: number;
  metrics?: Metrics;
  logger?: Logger;
  fetch?: typeof fetch;
}

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
export function createAppRequester(source: AppSource, options: AppRequesterOptions): AppRequester {
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
      if (isRateLimit(response.headers.get("x-ratelimit-remaining") ?? undefined, response.headers.get("retry-after") ?? undefined, body))
        outcome = "rate_limited";
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
