import type { JiraConfig } from "../config.ts";
import { expiresIn, isRecord, providerFetch, safeCode, splitScopes, str } from "./http.ts";
import { ProviderError, type InstallationInfo, type InstallationProvider, type ProviderCredentials } from "./provider.ts";

// Atlassian OAuth 2.0 (3LO) with PKCE: consent at auth.atlassian.com, a code for tokens at /oauth/token,
// then api.atlassian.com/oauth/token/accessible-resources names the sites (cloud ids) the consent covers.
// Refresh tokens rotate: every refresh returns a new one and disables the one spent.

/**
 * Token-endpoint codes meaning the grant is gone (a spent, revoked or expired refresh token or code).
 * Others (access_denied or invalid_client for wrong client credentials, invalid_request) are Keyplane's
 * own configuration or request at fault: another consent would not help.
 */
const REJECTED = new Set(["invalid_grant", "unauthorized_client"]);

interface Site {
  id: string;
  name: string;
  url?: string;
  scopes: string[];
}

export function createJiraProvider(config: JiraConfig, timeoutMs: number, now: () => Date): InstallationProvider {
  const authUrl = config.authUrl.replace(/\/+$/, "");
  const apiUrl = config.apiUrl.replace(/\/+$/, "");
  // Without offline_access Atlassian issues no refresh token, and the installation dies within the hour.
  const scopes = config.scopes.includes("offline_access") ? config.scopes : [...config.scopes, "offline_access"];

  async function token(body: Record<string, string>, secrets: string[]): Promise<ProviderCredentials> {
    const response = await providerFetch("jira", timeoutMs, {
      url: `${authUrl}/oauth/token`,
      json: { ...body, client_id: config.clientId, client_secret: config.clientSecret },
    });
    const data = isRecord(response.body) ? response.body : {};
    const accessToken = str(data.access_token);
    if (response.status === 200 && accessToken) {
      return {
        accessToken,
        refreshToken: str(data.refresh_token),
        expiresAt: expiresIn(data.expires_in, now()),
        scopes: splitScopes(data.scope, /\s+/),
      };
    }
    if (response.status === 200) throw new ProviderError("jira", "invalid_response", "transient");
    const code = safeCode(data.error, `http_${response.status}`, [...secrets, config.clientSecret]);
    throw new ProviderError("jira", code, REJECTED.has(code) ? "rejected" : "invalid", response.status);
  }

  async function accessibleResources(accessToken: string): Promise<Site[]> {
    const response = await providerFetch("jira", timeoutMs, { url: `${apiUrl}/oauth/token/accessible-resources`, bearer: accessToken });
    if (response.status !== 200) {
      const data = isRecord(response.body) ? response.body : {};
      const code = safeCode(data.error ?? data.code, `http_${response.status}`, [accessToken]);
      const kind = response.status === 401 || response.status === 403 ? "rejected" : "invalid";
      throw new ProviderError("jira", code, kind, response.status);
    }
    if (!Array.isArray(response.body)) throw new ProviderError("jira", "invalid_response", "transient");
    return response.body.flatMap((r): Site[] => {
      if (!isRecord(r) || !str(r.id)) return [];
      return [
        {
          id: str(r.id)!,
          name: str(r.name) ?? "",
          url: str(r.url),
          scopes: Array.isArray(r.scopes) ? r.scopes.filter((s): s is string => typeof s === "string") : [],
        },
      ];
    });
  }

  function toInfo(site: Site, all: Site[]): InstallationInfo {
    return {
      externalId: site.id,
      account: { id: site.id, login: site.name, type: "site", url: site.url },
      permissions: {},
      scopes: site.scopes,
      details: { sites: all.filter((s) => s.id !== site.id).map((s) => ({ id: s.id, name: s.name, url: s.url })) },
    };
  }

  return {
    platform: "jira",
    usesPkce: true,

    authorizationUrl({ state, redirectUri, codeChallenge }) {
      if (!codeChallenge) throw new ProviderError("jira", "missing_code_challenge", "invalid");
      const url = new URL(`${authUrl}/authorize`);
      url.searchParams.set("audience", "api.atlassian.com");
      url.searchParams.set("client_id", config.clientId);
      url.searchParams.set("scope", scopes.join(" "));
      url.searchParams.set("redirect_uri", redirectUri);
      url.searchParams.set("state", state);
      url.searchParams.set("response_type", "code");
      url.searchParams.set("prompt", "consent");
      url.searchParams.set("code_challenge", codeChallenge);
      url.searchParams.set("code_challenge_method", "S256");
      return url.toString();
    },

    async completeInstallation({ query, redirectUri, codeVerifier }) {
      const error = query.get("error");
      if (error) throw new ProviderError("jira", safeCode(error, "access_denied"), "rejected");
      const code = query.get("code");
      if (!code) throw new ProviderError("jira", "missing_code", "invalid");
      if (!codeVerifier) throw new ProviderError("jira", "missing_code_verifier", "invalid");
      const credentials = await token({ grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: codeVerifier }, [code, codeVerifier]);
      const sites = await accessibleResources(credentials.accessToken);
      const site = sites[0];
      // Consent that covers no site gives nothing to install into.
      if (!site) throw new ProviderError("jira", "no_accessible_resources", "invalid");
      return { info: toInfo(site, sites), credentials };
    },

    async refresh(refreshToken) {
      const credentials = await token({ grant_type: "refresh_token", refresh_token: refreshToken }, [refreshToken]);
      // The answer's refresh token replaces the spent one (which Atlassian has just disabled).
      return { ...credentials, refreshToken: credentials.refreshToken ?? refreshToken };
    },

    async installationInfo(ref) {
      if (!ref.accessToken) throw new ProviderError("jira", "missing_access_token", "invalid");
      const sites = await accessibleResources(ref.accessToken);
      const site = sites.find((s) => s.id === ref.externalId);
      if (!site) throw new ProviderError("jira", "site_not_accessible", "rejected");
      return toInfo(site, sites);
    },

    async revoke() {
      // Atlassian has no revocation endpoint for 3LO tokens: Keyplane forgets them, the user can remove
      // the app under their Atlassian account's connected apps.
    },
  };
}
