import { isRecord, num, providerFetch, safeCode, str } from "../providers/http.ts";
import { ProviderError } from "../providers/provider.ts";
import type { GitHubApp } from "./types.ts";

// The GitHub App's user authorization flow (user-to-server tokens): the consent page, the code
// exchange with PKCE, the refresh of an expiring token with its rotating refresh token, the user the
// token acts as, and revoking the user's grant. Every failure is a ProviderError carrying GitHub's
// error code only, never a token, code or secret.

const API_VERSION = "2022-11-28";

export interface GitHubUserEndpoints {
  /** GITHUB_URL: the consent page and the token endpoint. */
  webUrl: string;
  /** GITHUB_API_URL */
  apiUrl: string;
  timeoutMs: number;
}

/** A user-to-server token and its rotating refresh token, with when each ends (Keyplane's clock). */
export interface GitHubUserTokens {
  accessToken: string;
  accessExpiresAt?: Date;
  refreshToken?: string;
  refreshExpiresAt?: Date;
}

export interface GitHubUser {
  id: string;
  login: string;
}

type OAuthClient = Pick<GitHubApp, "name" | "clientId" | "clientSecret">;

function oauthClient(app: OAuthClient): { clientId: string; clientSecret: string } {
  if (!app.clientId || !app.clientSecret) throw new ProviderError("github", "app_oauth_client_not_configured", "invalid");
  return { clientId: app.clientId, clientSecret: app.clientSecret };
}

/** The consent page the principal's browser is sent to (PKCE S256). */
export function userAuthorizationUrl(
  endpoints: GitHubUserEndpoints,
  app: OAuthClient,
  request: { state: string; redirectUri: string; codeChallenge: string },
): string {
  const { clientId } = oauthClient(app);
  const url = new URL(`${endpoints.webUrl}/login/oauth/authorize`);
  url.searchParams.set("client_id", clientId);
  url.searchParams.set("redirect_uri", request.redirectUri);
  url.searchParams.set("state", request.state);
  url.searchParams.set("code_challenge", request.codeChallenge);
  url.searchParams.set("code_challenge_method", "S256");
  // GitHub shows the account picker instead of assuming whoever is signed in (a principal may have several).
  url.searchParams.set("prompt", "select_account");
  return url.toString();
}

/** The code from the consent's redirect, exchanged for the user's tokens. */
export function exchangeUserCode(
  endpoints: GitHubUserEndpoints,
  app: OAuthClient,
  args: { code: string; redirectUri: string; codeVerifier: string },
  now: () => Date,
) {
  return tokenRequest(endpoints, app, { code: args.code, redirect_uri: args.redirectUri, code_verifier: args.codeVerifier }, [args.code], now);
}

/** Spends the (single-use) refresh token for new tokens; a refused one is ProviderError kind "rejected". */
export function refreshUserToken(endpoints: GitHubUserEndpoints, app: OAuthClient, refreshToken: string, now: () => Date) {
  return tokenRequest(endpoints, app, { grant_type: "refresh_token", refresh_token: refreshToken }, [refreshToken], now);
}

async function tokenRequest(
  endpoints: GitHubUserEndpoints,
  app: OAuthClient,
  fields: Record<string, string>,
  secrets: string[],
  now: () => Date,
): Promise<GitHubUserTokens> {
  const { clientId, clientSecret } = oauthClient(app);
  const response = await providerFetch("github", endpoints.timeoutMs, {
    url: `${endpoints.webUrl}/login/oauth/access_token`,
    form: { client_id: clientId, client_secret: clientSecret, ...fields },
  });
  const body = isRecord(response.body) ? response.body : {};
  const accessToken = str(body.access_token);
  if (response.status === 200 && accessToken) {
    const at = now().getTime();
    const after = (seconds: unknown) => {
      const n = num(seconds);
      return n !== undefined && n > 0 ? new Date(at + n * 1000) : undefined;
    };
    return {
      accessToken,
      accessExpiresAt: after(body.expires_in),
      refreshToken: str(body.refresh_token),
      refreshExpiresAt: after(body.refresh_token_expires_in),
    };
  }
  // GitHub answers a bad code or refresh token with HTTP 200 and { error: "bad_verification_code" | "bad_refresh_token" }.
  const providerCode = safeCode(body.error, `http_${response.status}`, [...secrets, clientSecret]);
  const rejected = ["bad_verification_code", "bad_refresh_token", "access_denied", "unauthorized"].includes(providerCode);
  throw new ProviderError("github", providerCode, rejected ? "rejected" : "invalid", response.status === 200 ? undefined : response.status);
}

/** Who the token acts as (GET /user). */
export async function githubUser(endpoints: GitHubUserEndpoints, accessToken: string): Promise<GitHubUser> {
  const response = await providerFetch("github", endpoints.timeoutMs, {
    url: `${endpoints.apiUrl}/user`,
    bearer: accessToken,
    headers: { accept: "application/vnd.github+json", "x-github-api-version": API_VERSION },
  });
  const body = isRecord(response.body) ? response.body : {};
  const login = str(body.login);
  const id = num(body.id);
  if (response.status === 200 && login && id !== undefined) return { id: String(id), login };
  throw new ProviderError(
    "github",
    response.status === 401 ? "bad_credentials" : `http_${response.status}`,
    response.status === 401 ? "rejected" : "invalid",
    response.status,
  );
}

/**
 * Revokes the user's authorization of the app (DELETE /applications/{client_id}/grant): every token
 * and refresh token of that user for this app dies. Returns false when GitHub no longer knows the
 * token (already revoked or expired).
 */
export async function revokeUserGrant(endpoints: GitHubUserEndpoints, app: OAuthClient, accessToken: string): Promise<boolean> {
  const { clientId, clientSecret } = oauthClient(app);
  const response = await providerFetch("github", endpoints.timeoutMs, {
    method: "DELETE",
    url: `${endpoints.apiUrl}/applications/${encodeURIComponent(clientId)}/grant`,
    headers: {
      accept: "application/vnd.github+json",
      "x-github-api-version": API_VERSION,
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    json: { access_token: accessToken },
  });
  if (response.status === 204) return true;
  if (response.status === 404 || response.status === 422) return false;
  throw new ProviderError("github", `http_${response.status}`, response.status === 401 || response.status === 403 ? "rejected" : "invalid", response.status);
}
