import { createHash } from "node:crypto";
import {
  basicCredentials,
  bearerToken,
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
 * A local fake of Slack's OAuth v2 and of the few Web API methods Keyplane calls. Keyplane is
 * configured with SLACK_API_URL = `${fake.url}/api`; the browser goes to `${fake.url}/oauth/v2/authorize`.
 *
 * Like Slack it answers Web API errors with HTTP 200 and `{ ok: false, error }`; it binds an
 * authorization code to the client, the redirect_uri sent to /oauth/v2/authorize and the granted
 * scopes, accepts it once within 10 minutes; with token rotation it issues `xoxe.xoxb-1-…` access
 * tokens that expire after 12 hours (`token_expired` afterwards) and `xoxe-1-…` refresh tokens that
 * work once (a spent one gets `invalid_refresh_token`).
 */

export interface SlackTeam {
  id: string;
  name: string;
  domain: string;
}

export interface StartFakeSlackOptions {
  clientId: string;
  clientSecret: string;
  /** The app's one registered Redirect URL. */
  redirectUri: string;
  /** Token rotation on (default): expiring xoxe.xoxb tokens plus refresh tokens. Off: long-lived xoxb tokens. */
  tokenRotation?: boolean;
}

export type SlackFailure = { error: string } | { status: number; retryAfterSeconds?: number };

export interface FakeSlack {
  url: string;
  /** `${url}/api`, the value for SLACK_API_URL. */
  apiUrl: string;
  /** The app's id (A…), as in oauth.v2.access responses. */
  appId: string;
  requests: RequestLogEntry[];
  now(): number;
  setClockOffset(ms: number): void;
  /** The workspace the next consent is for; default a new one with a random T… id. */
  setNextTeam(team: SlackTeam): void;
  /** The next consent is refused: redirect with error=access_denied. */
  denyNext(): void;
  /** Successful refresh_token grants so far. */
  readonly refreshCount: number;
  /** Presentations of an already spent refresh token so far. */
  readonly refreshTokenReuseCount: number;
  /** Lifetime of rotating access tokens, default 43200 (12 h). */
  accessTokenTtlSeconds: number;
  expireAccessToken(token: string): void;
  expireAll(): void;
  /** The next call of `method` (e.g. "oauth.v2.access", "team.info") fails once: a Slack error (HTTP 200) or an HTTP status. */
  failNext(method: string, failure: SlackFailure): void;
  isAccessTokenValid(token: string): boolean;
  /** Every grant is revoked (like uninstalling the app everywhere): access tokens get token_revoked, refresh tokens invalid_refresh_token. */
  revokeAllGrants(): void;
  /** The channels of every workspace, by name; default #security and #general. Others get channel_not_found. */
  setChannels(names: string[]): void;
  /** Messages posted with chat.postMessage, in order. */
  messages(): SlackMessage[];
  close(): Promise<void>;
}

export interface SlackMessage {
  teamId: string;
  /** The channel's id (C…), whichever way it was named. */
  channel: string;
  channelName: string;
  text: string;
  ts: string;
}

type TokenKind = "bot" | "user";

interface Grant {
  team: SlackTeam;
  userId: string;
  botUserId: string;
  botId: string;
  botScopes: string[];
  userScopes: string[];
}

interface AccessRecord {
  grant: Grant;
  kind: TokenKind;
  expiresAtMs: number | null;
  revoked: boolean;
}

interface RefreshRecord {
  grant: Grant;
  kind: TokenKind;
  state: "active" | "spent" | "revoked";
}

interface CodeRecord {
  grant: Grant;
  redirectUri: string | undefined;
  codeChallenge: string | undefined;
  expiresAtMs: number;
  used: boolean;
}

const upperId = (prefix: string) => `${prefix}0${randomString(9, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")}`;
const splitScopes = (s: string | null | undefined) => (s ?? "").split(/[\s,]+/).filter(Boolean);

export async function startFakeSlack(options: StartFakeSlackOptions): Promise<FakeSlack> {
  const clock = createClock();
  const rotation = options.tokenRotation ?? true;
  const appId = upperId("A");
  const accessTokens = new Map<string, AccessRecord>();
  const refreshTokens = new Map<string, RefreshRecord>();
  const codes = new Map<string, CodeRecord>();
  const failures = new Map<string, SlackFailure>();
  let nextTeam: SlackTeam | undefined;
  const channelId = (name: string) => `C${createHash("sha256").update(name).digest("hex").slice(0, 10).toUpperCase()}`;
  let channels = new Map(["security", "general"].map((name) => [name, channelId(name)]));
  const posted: SlackMessage[] = [];
  let deny = false;
  let refreshCount = 0;
  let reuseCount = 0;
  let ttlSeconds = 43_200;

  const api = (json: Record<string, unknown>, headers: Record<string, string> = {}): FakeResponse => ({ status: 200, json, headers });
  const fail = (error: string, extra: Record<string, unknown> = {}) => api({ ok: false, error, ...extra });

  const mintAccess = (grant: Grant, kind: TokenKind) => {
    const random = randomString(rotation ? 60 : 24);
    const prefix = kind === "bot" ? "xoxb" : "xoxp";
    const teamNum = grant.team.id.replace(/\D/g, "") || "1";
    const token = secret(rotation ? `xoxe.${prefix}-1-${random}` : `${prefix}-${teamNum}${randomString(8, "0123456789")}-${random}`);
    accessTokens.set(token, { grant, kind, expiresAtMs: rotation ? clock.now() + ttlSeconds * 1000 : null, revoked: false });
    return token;
  };
  const mintRefresh = (grant: Grant, kind: TokenKind) => {
    const token = secret(`xoxe-1-${randomString(80)}`);
    refreshTokens.set(token, { grant, kind, state: "active" });
    return token;
  };

  /** The fields oauth.v2.access returns for a fresh bot (or user) token of a grant. */
  const tokenFields = (grant: Grant, kind: TokenKind): Record<string, unknown> => {
    const fields: Record<string, unknown> = { access_token: mintAccess(grant, kind) };
    if (rotation) Object.assign(fields, { refresh_token: mintRefresh(grant, kind), expires_in: ttlSeconds });
    return fields;
  };

  // ---- /oauth/v2/authorize ----
  const authorize = (req: FakeRequest): FakeResponse => {
    const q = req.query;
    if (q.get("client_id") !== options.clientId) return htmlPage(400, "Oops", "Invalid client_id parameter");
    const redirectUri = q.get("redirect_uri") ?? undefined;
    if (redirectUri !== undefined && redirectUri !== options.redirectUri) {
      return htmlPage(400, "Oops", `redirect_uri did not match any configured URIs. Passed URI: ${redirectUri}`);
    }
    const botScopes = splitScopes(q.get("scope"));
    const userScopes = splitScopes(q.get("user_scope"));
    if (botScopes.length === 0 && userScopes.length === 0) return htmlPage(400, "Oops", "Invalid permissions requested: no scope");
    const target = redirectUri ?? options.redirectUri;
    const state = q.get("state") ?? undefined;
    if (deny) {
      deny = false;
      return { status: 302, redirect: withQuery(target, { error: "access_denied", state: state ?? "" }) };
    }
    const team = nextTeam ?? { id: upperId("T"), name: "Fake Workspace", domain: `fake-${randomString(6, "abcdefghijklmnopqrstuvwxyz")}` };
    nextTeam = undefined;
    const grant: Grant = { team, userId: upperId("U"), botUserId: upperId("U"), botId: upperId("B"), botScopes, userScopes };
    const challenge = q.get("code_challenge") ?? undefined;
    const code = secret(`${randomString(10, "0123456789")}.${randomString(13, "0123456789")}.${randomString(64, "0123456789abcdef")}`);
    codes.set(code, { grant, redirectUri, codeChallenge: challenge, expiresAtMs: clock.now() + 600_000, used: false });
    return { status: 302, redirect: withQuery(target, { code, state }) };
  };

  // ---- oauth.v2.access ----
  const oauthAccess = (req: FakeRequest, params: Record<string, string>): FakeResponse => {
    const basic = basicCredentials(req.headers);
    const clientId = basic?.user ?? params.client_id;
    const clientSecret = basic?.password ?? params.client_secret;
    if (clientId !== options.clientId) return fail("invalid_client_id");
    if (clientSecret !== options.clientSecret) return fail("bad_client_secret");
    const grantType = params.grant_type ?? "authorization_code";

    if (grantType === "refresh_token") {
      const record = params.refresh_token ? refreshTokens.get(params.refresh_token) : undefined;
      if (record?.state !== "active") {
        if (record?.state === "spent") reuseCount++;
        return fail("invalid_refresh_token");
      }
      record.state = "spent";
      refreshCount++;
      const { grant, kind } = record;
      const base = { ok: true, app_id: appId, team: { id: grant.team.id, name: grant.team.name }, enterprise: null, is_enterprise_install: false };
      if (kind === "bot") {
        return api({
          ...base,
          authed_user: { id: grant.userId },
          scope: grant.botScopes.join(","),
          token_type: "bot",
          bot_user_id: grant.botUserId,
          ...tokenFields(grant, "bot"),
        });
      }
      return api({ ...base, user_id: grant.userId, scope: grant.userScopes.join(","), token_type: "user", ...tokenFields(grant, "user") });
    }
    if (grantType !== "authorization_code") return fail("invalid_grant_type");

    const code = params.code ? codes.get(params.code) : undefined;
    if (!code || code.used || code.expiresAtMs <= clock.now()) return fail("invalid_code");
    // "This must match the originally submitted URI (if one was sent)."
    if (code.redirectUri !== undefined && params.redirect_uri !== code.redirectUri) return fail("bad_redirect_uri");
    if (code.redirectUri === undefined && params.redirect_uri !== undefined && params.redirect_uri !== options.redirectUri) return fail("bad_redirect_uri");
    if (code.codeChallenge !== undefined) {
      const verifier = params.code_verifier ?? "";
      if (createHash("sha256").update(verifier).digest("base64url") !== code.codeChallenge) return fail("invalid_code_verifier");
    }
    code.used = true;
    const { grant } = code;
    const response: Record<string, unknown> = { ok: true, app_id: appId };
    const authedUser: Record<string, unknown> = { id: grant.userId };
    if (grant.userScopes.length) Object.assign(authedUser, { scope: grant.userScopes.join(","), token_type: "user", ...tokenFields(grant, "user") });
    response.authed_user = authedUser;
    if (grant.botScopes.length) {
      Object.assign(response, { scope: grant.botScopes.join(","), token_type: "bot", bot_user_id: grant.botUserId, ...tokenFields(grant, "bot") });
    }
    Object.assign(response, { team: { id: grant.team.id, name: grant.team.name }, enterprise: null, is_enterprise_install: false });
    return api(response);
  };

  // ---- token-authenticated methods ----
  const authenticate = (req: FakeRequest, params: Record<string, string>): { token: string; record: AccessRecord } | FakeResponse => {
    const token = bearerToken(req.headers) ?? (req.method === "POST" ? params.token : undefined);
    if (!token) return fail("not_authed");
    const record = accessTokens.get(token);
    if (!record) return fail("invalid_auth");
    if (record.revoked) return fail("token_revoked");
    if (record.expiresAtMs !== null && record.expiresAtMs <= clock.now()) return fail("token_expired");
    return { token, record };
  };
  const scopesOf = (record: AccessRecord) => (record.kind === "bot" ? record.grant.botScopes : record.grant.userScopes);

  const methods: Record<string, (req: FakeRequest, params: Record<string, string>) => FakeResponse> = {
    "oauth.v2.access": oauthAccess,
    "team.info": (req, params) => {
      const auth = authenticate(req, params);
      if ("status" in auth) return auth;
      const scopes = scopesOf(auth.record);
      if (!scopes.includes("team:read")) return fail("missing_scope", { needed: "team:read", provided: scopes.join(",") });
      const { team } = auth.record.grant;
      const icon = `https://a.slack-edge.com/80588/img/avatars-teams/ava_0001`;
      return api(
        {
          ok: true,
          team: {
            id: team.id,
            name: team.name,
            url: `https://${team.domain}.slack.com/`,
            domain: team.domain,
            email_domain: "",
            icon: {
              image_default: true,
              image_34: `${icon}-34.png`,
              image_44: `${icon}-44.png`,
              image_68: `${icon}-68.png`,
              image_88: `${icon}-88.png`,
              image_102: `${icon}-102.png`,
              image_132: `${icon}-132.png`,
              image_230: `${icon}-230.png`,
            },
            avatar_base_url: "https://ca.slack-edge.com/",
            is_verified: false,
          },
        },
        { "x-oauth-scopes": scopes.join(","), "x-accepted-oauth-scopes": "team:read" },
      );
    },
    "auth.test": (req, params) => {
      const auth = authenticate(req, params);
      if ("status" in auth) return auth;
      const { grant, kind } = auth.record;
      const base = { ok: true, url: `https://${grant.team.domain}.slack.com/`, team: grant.team.name, team_id: grant.team.id };
      return kind === "bot"
        ? api({ ...base, user: "keyplane", user_id: grant.botUserId, bot_id: grant.botId, is_enterprise_install: false })
        : api({ ...base, user: "fake.user", user_id: grant.userId, is_enterprise_install: false });
    },
    // Like Slack: a bot token with chat:write, a channel by #name or id, text of at most 40,000 characters.
    "chat.postMessage": (req, params) => {
      const auth = authenticate(req, params);
      if ("status" in auth) return auth;
      const scopes = scopesOf(auth.record);
      if (!scopes.includes("chat:write")) return fail("missing_scope", { needed: "chat:write", provided: scopes.join(",") });
      const wanted = params.channel ?? "";
      if (!wanted) return fail("channel_not_found");
      const named = wanted.startsWith("#") ? wanted.slice(1) : [...channels].find(([, id]) => id === wanted)?.[0];
      const id = named === undefined ? undefined : channels.get(named);
      if (!id || !named) return fail("channel_not_found");
      const text = params.text ?? "";
      if (!text.trim()) return fail("no_text");
      if (text.length > 40_000) return fail("msg_too_long");
      const ts = `${Math.floor(clock.now() / 1000)}.${String(posted.length).padStart(6, "0")}`;
      posted.push({ teamId: auth.record.grant.team.id, channel: id, channelName: named, text, ts });
      return api({ ok: true, channel: id, ts, message: { type: "message", text, bot_id: auth.record.grant.botId, ts } });
    },
    "auth.revoke": (req, params) => {
      const auth = authenticate(req, params);
      if ("status" in auth) return auth;
      if (params.test === "true" || params.test === "1" || req.query.get("test") === "true") return api({ ok: true, revoked: false });
      auth.record.revoked = true;
      for (const r of refreshTokens.values()) if (r.grant === auth.record.grant && r.kind === auth.record.kind && r.state === "active") r.state = "revoked";
      return api({ ok: true, revoked: true });
    },
  };

  const handle = (req: FakeRequest): FakeResponse => {
    if (req.method === "GET" && req.path === "/oauth/v2/authorize") return authorize(req);
    const m = /^\/api\/([A-Za-z0-9.]+)$/.exec(req.path);
    if (!m) return { status: 404, headers: { "content-type": "text/html; charset=utf-8" }, text: "<html><body>Not Found</body></html>" };
    const method = m[1]!;
    const failure = failures.get(method);
    if (failure) {
      failures.delete(method);
      if ("error" in failure) return fail(failure.error);
      const headers: Record<string, string> = {};
      if (failure.status === 429) {
        headers["retry-after"] = String(failure.retryAfterSeconds ?? 1);
        return { status: 429, headers, json: { ok: false, error: "ratelimited" } };
      }
      return { status: failure.status, headers: { "content-type": "text/html; charset=utf-8" }, text: "<html><body>Service Unavailable</body></html>" };
    }
    const handler = methods[method];
    if (!handler) return { status: 404, json: { ok: false, error: "unknown_method", req_method: method } };
    if (req.bodyType === "invalid") return fail("invalid_json");
    // Slack takes arguments from the query string or the body; tokens only from the header or a POST body.
    const params = { ...Object.fromEntries(req.query), ...bodyFields(req) };
    if (req.method === "GET") delete params.token;
    return handler(req, params);
  };

  const server = await startFakeServer({ clock, handle });

  return {
    url: server.url,
    apiUrl: `${server.url}/api`,
    appId,
    requests: server.requests,
    now: clock.now,
    setClockOffset: clock.setClockOffset,
    close: server.close,
    setNextTeam(team) {
      nextTeam = { ...team };
    },
    denyNext() {
      deny = true;
    },
    get refreshCount() {
      return refreshCount;
    },
    get refreshTokenReuseCount() {
      return reuseCount;
    },
    get accessTokenTtlSeconds() {
      return ttlSeconds;
    },
    set accessTokenTtlSeconds(value: number) {
      ttlSeconds = value;
    },
    expireAccessToken(token) {
      const record = accessTokens.get(token);
      if (!record) throw new Error("fake Slack: unknown access token");
      record.expiresAtMs = clock.now();
    },
    expireAll() {
      const now = clock.now();
      for (const record of accessTokens.values()) record.expiresAtMs = Math.min(record.expiresAtMs ?? now, now);
    },
    failNext(method, failure) {
      failures.set(method, failure);
    },
    isAccessTokenValid(token) {
      const record = accessTokens.get(token);
      return !!record && !record.revoked && (record.expiresAtMs === null || record.expiresAtMs > clock.now());
    },
    setChannels(names) {
      channels = new Map(names.map((name) => [name.replace(/^#/, ""), channelId(name.replace(/^#/, ""))]));
    },
    messages: () => [...posted],
    revokeAllGrants() {
      for (const record of accessTokens.values()) record.revoked = true;
      for (const record of refreshTokens.values()) if (record.state === "active") record.state = "revoked";
    },
  };
}
