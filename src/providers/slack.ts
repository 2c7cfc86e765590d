import type { SlackConfig } from "../config.ts";
import { expiresIn, isRecord, providerFetch, safeCode, splitScopes, str } from "./http.ts";
import { ProviderError, type InstallationInfo, type InstallationProvider, type ProviderCredentials } from "./provider.ts";

// Slack OAuth v2 for a bot: the browser goes to slack.com/oauth/v2/authorize, comes back with a code, and
// oauth.v2.access turns it into a bot token (with token rotation on: an expiring token and a refresh token).
// Slack answers most errors as HTTP 200 { ok: false, error: "<code>" }.

/** Codes meaning the grant itself is gone: the installation needs to be authorized again. */
const REJECTED = new Set(["invalid_refresh_token", "invalid_grant", "token_revoked", "invalid_auth", "account_inactive", "token_expired", "access_denied"]);
/** Codes worth retrying later. */
const TRANSIENT = new Set(["ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"]);
/** auth.revoke answers these for a token that no longer works: as good as revoked. */
const ALREADY_REVOKED = new Set(["invalid_auth", "token_revoked", "token_expired", "account_inactive", "not_authed"]);

type SlackBody = Record<string, unknown>;

export function createSlackProvider(config: SlackConfig, timeoutMs: number, now: () => Date): InstallationProvider {
  const apiUrl = config.apiUrl.replace(/\/+$/, "");

  /** Calls a Web API method; resolves with the body when ok, throws ProviderError otherwise. */
  async function call(
    method: string,
    options: { form?: Record<string, string | undefined>; bearer?: string },
    secrets: Array<string | undefined>,
  ): Promise<{ body: SlackBody; headers: Headers }> {
    const response = await providerFetch("slack", timeoutMs, { url: `${apiUrl}/${method}`, method: "POST", form: options.form ?? {}, bearer: options.bearer });
    const body = response.body;
    if (isRecord(body) && body.ok === true && response.status === 200) return { body, headers: response.headers };
    const status = response.status === 200 ? undefined : response.status;
    if (!isRecord(body)) throw new ProviderError("slack", "invalid_response", response.status === 200 ? "transient" : "invalid", status);
    const code = safeCode(body.error, "unknown_error", [...secrets, config.clientSecret]);
    throw new ProviderError("slack", code, kindOf(code), status);
  }

  function toCredentials(body: SlackBody): ProviderCredentials {
    const accessToken = str(body.access_token);
    if (!accessToken) throw new ProviderError("slack", "invalid_response", "transient");
    return {
      accessToken,
      refreshToken: str(body.refresh_token),
      expiresAt: expiresIn(body.expires_in, now()),
      scopes: splitScopes(body.scope, /[,\s]+/),
    };
  }

  async function installationInfo(ref: { externalId: string; accessToken?: string }): Promise<InstallationInfo> {
    if (!ref.accessToken) throw new ProviderError("slack", "missing_access_token", "invalid");
    const { body, headers } = await call("team.info", { bearer: ref.accessToken }, [ref.accessToken]);
    const team = isRecord(body.team) ? body.team : {};
    const teamId = str(team.id);
    const enterpriseId = str(team.enterprise_id);
    // An org-wide install is known by its Enterprise Grid id (E…); a workspace install by its team id (T…).
    const enterprise = ref.externalId.startsWith("E") || (enterpriseId === ref.externalId && teamId !== ref.externalId);
    // The token must belong to the installation it is asked about.
    if (!enterprise && teamId !== ref.externalId) throw new ProviderError("slack", "team_mismatch", "invalid");
    const domain = str(team.domain);
    // Web API answers name the token's scopes in X-OAuth-Scopes.
    const scopes = splitScopes(headers.get("x-oauth-scopes"), /[,\s]+/);
    return {
      externalId: ref.externalId,
      account: {
        id: ref.externalId,
        login: (enterprise ? str(team.enterprise_name) : undefined) ?? str(team.name) ?? "",
        type: enterprise ? "enterprise" : "team",
        url: domain ? (enterprise ? `https://${domain}.enterprise.slack.com` : `https://${domain}.slack.com`) : undefined,
      },
      permissions: {},
      scopes,
      details: enterprise && teamId && teamId !== ref.externalId ? { teamId } : {},
    };
  }

  return {
    platform: "slack",
    usesPkce: false,

    authorizationUrl({ state, redirectUri }) {
      // The browser page lives beside the API: https://slack.com/oauth/v2/authorize for https://slack.com/api.
      const url = new URL("/oauth/v2/authorize", apiUrl);
      url.searchParams.set("client_id", config.clientId);
      url.searchParams.set("scope", config.scopes.join(","));
      url.searchParams.set("redirect_uri", redirectUri);
      url.searchParams.set("state", state);
      return url.toString();
    },

    async completeInstallation({ query, redirectUri }) {
      const error = query.get("error");
      if (error) throw new ProviderError("slack", safeCode(error, "access_denied"), "rejected");
      const code = query.get("code");
      if (!code) throw new ProviderError("slack", "missing_code", "invalid");
      const { body } = await call(
        "oauth.v2.access",
        { form: { client_id: config.clientId, client_secret: config.clientSecret, code, redirect_uri: redirectUri } },
        [code],
      );
      const credentials = toCredentials(body);
      const team = isRecord(body.team) ? body.team : undefined;
      const enterprise = isRecord(body.enterprise) ? body.enterprise : undefined;
      const externalId = body.is_enterprise_install === true ? str(enterprise?.id) : str(team?.id);
      if (!externalId) throw new ProviderError("slack", "invalid_response", "transient");
      const info = await installationInfo({ externalId, accessToken: credentials.accessToken });
      if (!info.account.login) info.account.login = str(body.is_enterprise_install === true ? enterprise?.name : team?.name) ?? "";
      if (info.scopes.length === 0) info.scopes = credentials.scopes;
      info.details = { ...info.details, botUserId: str(body.bot_user_id), appId: str(body.app_id) };
      return { info, credentials };
    },

    async refresh(refreshToken) {
      const { body } = await call(
        "oauth.v2.access",
        { form: { client_id: config.clientId, client_secret: config.clientSecret, grant_type: "refresh_token", refresh_token: refreshToken } },
        [refreshToken],
      );
      const credentials = toCredentials(body);
      // Slack hands back a refresh token on every rotation; should one ever be missing, the old one stays.
      return { ...credentials, refreshToken: credentials.refreshToken ?? refreshToken };
    },

    installationInfo,

    async revoke(ref) {
      if (!ref.accessToken) return;
      try {
        await call("auth.revoke", { bearer: ref.accessToken }, [ref.accessToken]);
      } catch (error) {
        if (error instanceof ProviderError && ALREADY_REVOKED.has(error.providerCode)) return;
        throw error;
      }
    },
  };
}

function kindOf(code: string): ProviderError["kind"] {
  if (REJECTED.has(code)) return "rejected";
  if (TRANSIENT.has(code)) return "transient";
  return "invalid";
}
