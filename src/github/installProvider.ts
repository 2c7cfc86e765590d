import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { isRecord, messageCode, num, providerFetch, safeCode, str } from "../providers/http.ts";
import { ProviderError, type InstallationInfo, type InstallationProvider, type ProviderCredentials } from "../providers/provider.ts";
import { type AppRequester, type AppSource, createAppRequester } from "./appRequester.ts";
import { toProviderError } from "./githubAppErrors.ts";
import type { GitHubApp, GitHubAppClient } from "./types.ts";

// A GitHub App: Keyplane holds the app's private key, never a long-lived token. The browser installs the
// app at `${webUrl}/apps/<slug>/installations/new`; GitHub sends it back with installation_id (and, when the
// app asks for user authorization during installation, an OAuth code). Installation tokens are minted on
// demand by the app's GitHubAppClient (appClient.ts), which signs the app JWT from the key the
// registry holds now (a rotated key is used at once).

const API_VERSION = "2022-11-28";
const PER_PAGE = 100;
const MAX_PAGES = 50;

export interface GitHubProviderOptions {
  apiUrl: string;
  webUrl: string;
  timeoutMs: number;
  /** Counted like the client's calls (GET/DELETE /app/installations/{installation_id}). */
  metrics?: Metrics;
  logger?: Logger;
  fetch?: typeof fetch;
}

/**
 * The install provider of one named GitHub App. `source` is the app or a getter of its current version
 * (registry.get(name)), `client` mints its installation tokens.
 */
export function createGitHubProvider(source: AppSource, client: GitHubAppClient, options: GitHubProviderOptions): InstallationProvider {
  const { timeoutMs } = options;
  const requester: AppRequester = createAppRequester(source, options);
  const getApp = typeof source === "function" ? source : () => source;
  /** The app's public settings (slug, OAuth client) as they are now. */
  const settings = (): Pick<GitHubApp, "slug" | "clientId" | "clientSecret"> => {
    const { slug, clientId, clientSecret } = getApp();
    return { slug, clientId, clientSecret };
  };
  const config = { apiUrl: options.apiUrl.replace(/\/+$/, ""), webUrl: options.webUrl.replace(/\/+$/, "") };

  async function installationInfo(ref: { externalId: string }): Promise<InstallationInfo> {
    const installationId = parseInstallationId(ref.externalId);
    let data: unknown;
    try {
      ({ data } = await requester.appRequest("GET /app/installations/{installation_id}", { installation_id: installationId }));
    } catch (error) {
      throw githubError(error);
    }
    return toInstallationInfo(data);
  }

  async function exchangeCode(code: string, redirectUri: string): Promise<string> {
    const { clientId, clientSecret } = settings();
    const response = await providerFetch("github", timeoutMs, {
      url: `${config.webUrl}/login/oauth/access_token`,
      form: { client_id: clientId, client_secret: clientSecret, code, redirect_uri: redirectUri },
    });
    const body = isRecord(response.body) ? response.body : {};
    const accessToken = str(body.access_token);
    if (response.status === 200 && accessToken) return accessToken;
    // GitHub answers a bad code with HTTP 200 and { error: "bad_verification_code" }.
    const providerCode = safeCode(body.error, `http_${response.status}`, [code, clientSecret]);
    const kind = providerCode === "bad_verification_code" || providerCode === "access_denied" ? "rejected" : "invalid";
    throw new ProviderError("github", providerCode, kind, response.status === 200 ? undefined : response.status);
  }

  /** Whether the user behind `userToken` can see installation `installationId` (GET /user/installations, paged). */
  async function userCanSee(userToken: string, installationId: number): Promise<boolean> {
    const apiOrigin = new URL(config.apiUrl).origin;
    let url: URL | undefined = new URL(`${config.apiUrl}/user/installations`);
    url.searchParams.set("per_page", String(PER_PAGE));
    let page = 1;
    let seen = 0;
    while (url && page <= MAX_PAGES) {
      const response = await providerFetch("github", timeoutMs, {
        url,
        bearer: userToken,
        headers: { accept: "application/vnd.github+json", "x-github-api-version": API_VERSION },
      });
      const body = isRecord(response.body) ? response.body : {};
      if (response.status !== 200) {
        const kind = response.status === 401 || response.status === 403 || response.status === 404 ? "rejected" : "invalid";
        throw new ProviderError("github", messageCode(body.message, `http_${response.status}`), kind, response.status);
      }
      const installations = Array.isArray(body.installations) ? body.installations : [];
      if (installations.some((i) => isRecord(i) && num(i.id) === installationId)) return true;
      seen += installations.length;
      // Follow rel="next" (only on the API's own origin: the user's token goes with it); without a Link
      // header, ask for the next page while a full page came back and total_count says there is more.
      const next = nextLink(response.headers.get("link"));
      if (next) {
        url = new URL(next);
        if (url.origin !== apiOrigin) return false;
      } else if (installations.length >= PER_PAGE && seen < (num(body.total_count) ?? Number.POSITIVE_INFINITY)) {
        url.searchParams.set("page", String(page + 1));
      } else {
        url = undefined;
      }
      page++;
    }
    return false;
  }

  return {
    platform: "github",
    usesPkce: false,

    authorizationUrl({ state }) {
      const { slug } = settings();
      // Without the slug (GITHUB_APP_<NAME>_SLUG, or the slug file) there is no install page to send anyone to.
      if (!slug) throw new ProviderError("github", "app_slug_not_configured", "invalid");
      const url = new URL(`${config.webUrl}/apps/${encodeURIComponent(slug)}/installations/new`);
      url.searchParams.set("state", state);
      return url.toString();
    },

    async completeInstallation({ query, redirectUri }) {
      const error = query.get("error");
      if (error) throw new ProviderError("github", safeCode(error, "access_denied"), "rejected");
      // An organization member without the right to install only asks an owner to approve: nothing is installed yet.
      if (query.get("setup_action") === "request") throw new ProviderError("github", "installation_requested", "invalid");
      const installationId = parseInstallationId(query.get("installation_id"));
      const { clientId, clientSecret } = settings();
      if (clientId && clientSecret) {
        // installation_id in the callback is only a claim: anyone can type one. With the app's OAuth client the
        // installing user's code proves which installations that user can see.
        const code = query.get("code");
        if (!code) throw new ProviderError("github", "missing_code", "invalid");
        const userToken = await exchangeCode(code, redirectUri);
        if (!(await userCanSee(userToken, installationId))) throw new ProviderError("github", "installation_not_accessible", "rejected");
      }
      return { info: await installationInfo({ externalId: String(installationId) }) };
    },

    async refresh() {
      throw new ProviderError("github", "refresh_unsupported", "invalid");
    },

    installationInfo,

    async revoke(ref) {
      const installationId = parseInstallationId(ref.externalId);
      try {
        await requester.appRequest("DELETE /app/installations/{installation_id}", { installation_id: installationId });
      } catch (error) {
        if (isRecord(error) && error.status === 404) return; // already uninstalled
        throw githubError(error);
      }
    },

    async mintInstallationToken(externalId): Promise<ProviderCredentials> {
      const installationId = parseInstallationId(externalId);
      try {
        const token = await client.mint({ installationId });
        return { accessToken: token.token, expiresAt: token.expiresAt, scopes: [] };
      } catch (error) {
        throw toProviderError(error);
      }
    },
  };
}

function parseInstallationId(value: string | null | undefined): number {
  if (!value || !/^[1-9][0-9]{0,15}$/.test(value)) throw new ProviderError("github", "invalid_installation_id", "invalid");
  const id = Number(value);
  if (!Number.isSafeInteger(id)) throw new ProviderError("github", "invalid_installation_id", "invalid");
  return id;
}

function toInstallationInfo(data: unknown): InstallationInfo {
  if (!isRecord(data) || num(data.id) === undefined) throw new ProviderError("github", "invalid_response", "transient");
  const account = isRecord(data.account) ? data.account : {};
  const permissions: Record<string, string> = {};
  if (isRecord(data.permissions)) {
    for (const [name, level] of Object.entries(data.permissions)) if (typeof level === "string") permissions[name] = level;
  }
  const selection = data.repository_selection;
  return {
    externalId: String(data.id),
    account: {
      id: String(account.id ?? ""),
      // Enterprise accounts have a slug and a name instead of a login.
      login: str(account.login) ?? str(account.slug) ?? str(account.name) ?? "",
      type: str(account.type) ?? (data.target_type === "Enterprise" ? "Enterprise" : "unknown"),
      url: str(account.html_url),
    },
    permissions,
    scopes: [],
    repositorySelection: selection === "all" || selection === "selected" ? selection : undefined,
    details: {
      appSlug: str(data.app_slug),
      suspendedAt: str(data.suspended_at) ?? null,
      events: Array.isArray(data.events) ? data.events.filter((e): e is string => typeof e === "string") : [],
    },
  };
}

function nextLink(link: string | null): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (match?.[1]) return match[1];
  }
  return undefined;
}

/**
 * An error from @octokit/request or @octokit/auth-app as a ProviderError: the code is GitHub's message made
 * into an identifier ("Bad credentials" -> bad_credentials), never the request (which carries the JWT).
 */
export function githubError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const status = isRecord(error) && typeof error.status === "number" ? error.status : undefined;
  if (status === undefined) {
    const name = error instanceof Error ? error.name : "";
    if (name === "TimeoutError" || name === "AbortError") return new ProviderError("github", "timeout", "transient");
    // Not an HTTP answer: signing the JWT failed (a bad private key) or something else local.
    return new ProviderError("github", "app_authentication_failed", "invalid");
  }
  const response = isRecord(error) && isRecord(error.response) ? error.response : undefined;
  if (!response) {
    // @octokit/request reports a failed fetch (refused, reset, timed out) as status 500 without a response.
    const cause = isRecord(error) && error.cause instanceof Error ? error.cause.name : error instanceof Error ? error.name : "";
    return new ProviderError("github", cause === "TimeoutError" || cause === "AbortError" ? "timeout" : "network_error", "transient");
  }
  const data = isRecord(response.data) ? response.data : {};
  const headers = isRecord(response.headers) ? response.headers : {};
  const code = messageCode(data.message, `http_${status}`);
  if (status >= 500 || status === 429) return new ProviderError("github", code, "transient", status);
  // A 403 for an exhausted rate limit is a wait, not a refusal.
  if (status === 403 && (headers["x-ratelimit-remaining"] === "0" || code.includes("rate_limit"))) {
    return new ProviderError("github", code, "transient", status);
  }
  if (status === 401 || status === 403 || status === 404) return new ProviderError("github", code, "rejected", status);
  return new ProviderError("github", code, "invalid", status);
}
