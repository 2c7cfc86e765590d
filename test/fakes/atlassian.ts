import { createHash, randomUUID } from "node:crypto";
import {
  bearerToken,
  bodyFields,
  createClock,
  htmlPage,
  randomHex,
  randomString,
  secret,
  startFakeServer,
  withQuery,
  type FakeRequest,
  type FakeResponse,
  type RequestLogEntry,
} from "./fakeServer.ts";

/**
 * A local fake of Atlassian's OAuth 2.0 (3LO) authorization server (auth.atlassian.com) and of the
 * API gateway (api.atlassian.com): Keyplane is configured with ATLASSIAN_AUTH_URL = ATLASSIAN_API_URL = fake.url.
 *
 * It checks what Atlassian checks: the client, the exact callback URL, audience=api.atlassian.com,
 * response_type=code, PKCE (S256) when required, single-use codes; access tokens live an hour; a
 * refresh token is issued only with offline_access, and refresh tokens rotate: each refresh returns
 * a new pair and disables the refresh token presented, whose reuse gets 403
 * `{ error: "invalid_grant", error_description: "Unknown or invalid refresh token." }`.
 *
 * Real Atlassian keeps a spent refresh token (and its companion access token) usable for a 10-minute
 * leeway window, and treats reuse outside that window as theft: every refresh token of the grant is
 * invalidated and the user must consent again. The fake does the same, but its leeway defaults to 0
 * so that any reuse is visible; set `refreshTokenLeewaySeconds = 600` for Atlassian's window.
 * Refresh tokens also expire after 90 days unused and 365 days after consent.
 */

export interface AtlassianSite {
  /** The cloud id (uuid). */
  id: string;
  name: string;
  /** e.g. https://acme.atlassian.net */
  url: string;
  avatarUrl?: string;
}

export interface AtlassianUser {
  accountId: string;
  displayName: string;
  emailAddress: string;
}

export interface StartFakeAtlassianOptions {
  clientId: string;
  clientSecret: string;
  /** The app's callback URL, matched exactly. */
  redirectUri: string;
  /** Refuse /authorize without an S256 code_challenge (default true). */
  requirePkce?: boolean;
}

export interface FakeAtlassian {
  url: string;
  requests: RequestLogEntry[];
  now(): number;
  setClockOffset(ms: number): void;
  /** Sites the next consent grants access to; default one random site. */
  setNextSites(sites: AtlassianSite[]): void;
  /** The user who consents next; default a random one. */
  setNextUser(user: AtlassianUser): void;
  /** The next consent is refused: redirect with error=access_denied. */
  denyNext(): void;
  /** Successful refresh_token grants so far (including ones answered with an injected failure after rotation). */
  readonly refreshCount: number;
  /** How many times a spent (already rotated) refresh token was presented, inside or outside the leeway. */
  readonly refreshTokenReuseCount: number;
  /** Access-token lifetime for tokens issued from now on; default 3600. */
  accessTokenTtlSeconds: number;
  /** How long a spent refresh token and its companion access token stay usable; default 0 (Atlassian: 600). */
  refreshTokenLeewaySeconds: number;
  expireAccessTokens(): void;
  /**
   * The next refresh_token grant fails with this HTTP status (once). By default nothing is rotated
   * (a transient failure before the server acted); with afterRotation the server rotates (the
   * presented token is spent, a new pair exists) but the response is lost.
   */
  failNextRefresh(failure: { status: number; afterRotation?: boolean }): void;
  /**
   * Revokes grants (like the user removing the app): their refresh tokens are refused from now on
   * and their access tokens stop working. Without an argument every grant; with a token (access or
   * refresh) the grant it belongs to.
   */
  revokeGrant(token?: string): void;
  isAccessTokenValid(token: string): boolean;
  close(): Promise<void>;
}

interface Grant {
  user: AtlassianUser;
  sites: AtlassianSite[];
  scopes: string[];
  createdAtMs: number;
  revoked: boolean;
}

interface AccessRecord {
  grant: Grant;
  expiresAtMs: number;
  /** Set when its companion refresh token is spent: unusable from then on. */
  revokedAtMs: number | null;
}

interface RefreshRecord {
  grant: Grant;
  companion: string;
  issuedAtMs: number;
  spentAtMs: number | null;
}

interface CodeRecord {
  grant: Grant;
  redirectUri: string;
  codeChallenge: string | undefined;
  expiresAtMs: number;
  used: boolean;
}

const INACTIVITY_MS = 90 * 24 * 3600 * 1000;
const ABSOLUTE_MS = 365 * 24 * 3600 * 1000;
const GATEWAY_UNAUTHORIZED: FakeResponse = { status: 401, json: { code: 401, message: "Unauthorized" } };

export async function startFakeAtlassian(options: StartFakeAtlassianOptions): Promise<FakeAtlassian> {
  const clock = createClock();
  const requirePkce = options.requirePkce ?? true;
  const accessTokens = new Map<string, AccessRecord>();
  const refreshTokens = new Map<string, RefreshRecord>();
  const codes = new Map<string, CodeRecord>();
  const grants: Grant[] = [];
  let nextSites: AtlassianSite[] | undefined;
  let nextUser: AtlassianUser | undefined;
  let deny = false;
  let refreshCount = 0;
  let reuseCount = 0;
  let ttlSeconds = 3600;
  let leewaySeconds = 0;
  let refreshFailure: { status: number; afterRotation?: boolean } | undefined;

  const tokenError = (status: number, error: string, description: string): FakeResponse => ({
    status,
    json: { error, error_description: description },
  });
  const invalidRefresh = () => tokenError(403, "invalid_grant", "Unknown or invalid refresh token.");

  const accessValid = (record: AccessRecord | undefined) => {
    if (!record || record.grant.revoked) return false;
    const now = clock.now();
    return record.expiresAtMs > now && (record.revokedAtMs === null || record.revokedAtMs > now);
  };

  const revokeGrantRecord = (grant: Grant) => {
    grant.revoked = true;
  };

  const issuePair = (grant: Grant) => {
    // Real access tokens are JWTs of about a kilobyte; callers must not assume a short token.
    const accessToken = secret(`eyJ${randomString(40)}.${randomString(400)}.${randomString(342)}`);
    accessTokens.set(accessToken, { grant, expiresAtMs: clock.now() + ttlSeconds * 1000, revokedAtMs: null });
    const body: Record<string, unknown> = { access_token: accessToken, expires_in: ttlSeconds, token_type: "Bearer" };
    if (grant.scopes.includes("offline_access")) {
      const refreshToken = secret(`eyJ${randomString(40)}.${randomString(300)}.${randomString(200)}`);
      refreshTokens.set(refreshToken, { grant, companion: accessToken, issuedAtMs: clock.now(), spentAtMs: null });
      body.refresh_token = refreshToken;
    }
    body.scope = grant.scopes.join(" ");
    return body;
  };

  // ---- /authorize ----
  const authorize = (req: FakeRequest): FakeResponse => {
    const q = req.query;
    if (q.get("client_id") !== options.clientId) return htmlPage(400, "Something went wrong", "Invalid client_id.");
    const redirectUri = q.get("redirect_uri");
    if (redirectUri !== options.redirectUri) {
      return htmlPage(400, "Something went wrong", "The redirect_uri is not registered as a callback URL for this app.");
    }
    const state = q.get("state") ?? undefined;
    const error = (code: string, description: string): FakeResponse => ({
      status: 302,
      redirect: withQuery(redirectUri, { error: code, error_description: description, state }),
    });
    if (q.get("audience") !== "api.atlassian.com") return error("invalid_request", "The audience parameter must be api.atlassian.com");
    if (q.get("response_type") !== "code") return error("unsupported_response_type", "Unsupported response_type: only code is supported");
    const scopes = (q.get("scope") ?? "").split(/\s+/).filter(Boolean);
    if (scopes.length === 0) return error("invalid_scope", "The scope parameter is required");
    const challenge = q.get("code_challenge") ?? undefined;
    const method = q.get("code_challenge_method") ?? undefined;
    if (challenge !== undefined || requirePkce) {
      if (!challenge) return error("invalid_request", "code_challenge is required");
      if (method !== "S256") return error("invalid_request", "code_challenge_method must be S256");
    }
    if (deny) {
      deny = false;
      return error("access_denied", "User did not authorize the request");
    }
    const user = nextUser ?? { accountId: `712020:${randomUUID()}`, displayName: "Fake User", emailAddress: `user-${randomHex(3)}@example.com` };
    nextUser = undefined;
    const sites = nextSites ?? [
      (() => {
        const name = `fake-${randomString(6, "abcdefghijklmnopqrstuvwxyz")}`;
        return { id: randomUUID(), name, url: `https://${name}.atlassian.net` };
      })(),
    ];
    nextSites = undefined;
    const grant: Grant = { user, sites: sites.map((s) => ({ ...s })), scopes, createdAtMs: clock.now(), revoked: false };
    grants.push(grant);
    const code = secret(`eyJ${randomString(30)}.${randomString(120)}`);
    codes.set(code, { grant, redirectUri, codeChallenge: challenge, expiresAtMs: clock.now() + 600_000, used: false });
    return { status: 302, redirect: withQuery(redirectUri, { code, state }) };
  };

  // ---- /oauth/token ----
  const token = (req: FakeRequest): FakeResponse => {
    if (req.bodyType === "invalid") return tokenError(400, "invalid_request", "Invalid JSON body");
    const p = bodyFields(req);
    if (p.client_id !== options.clientId || p.client_secret !== options.clientSecret) return tokenError(401, "access_denied", "Unauthorized");

    if (p.grant_type === "authorization_code") {
      const code = p.code ? codes.get(p.code) : undefined;
      if (!code || code.used || code.expiresAtMs <= clock.now()) return tokenError(403, "invalid_grant", "Invalid authorization code");
      if (p.redirect_uri !== code.redirectUri) return tokenError(403, "invalid_grant", "The redirect_uri does not match the one of the authorization request");
      if (code.codeChallenge !== undefined) {
        const verifier = p.code_verifier ?? "";
        if (createHash("sha256").update(verifier).digest("base64url") !== code.codeChallenge) {
          return tokenError(403, "invalid_grant", "Failed to verify code verifier");
        }
      }
      code.used = true;
      return { status: 200, json: issuePair(code.grant) };
    }

    if (p.grant_type === "refresh_token") {
      const record = p.refresh_token ? refreshTokens.get(p.refresh_token) : undefined;
      if (!record || record.grant.revoked) return invalidRefresh();
      const now = clock.now();
      if (now - record.issuedAtMs > INACTIVITY_MS || now - record.grant.createdAtMs > ABSOLUTE_MS) return invalidRefresh();
      if (record.spentAtMs !== null) {
        reuseCount++;
        if (now - record.spentAtMs >= leewaySeconds * 1000) {
          // Reuse outside the leeway: Atlassian invalidates every refresh token of the grant.
          revokeGrantRecord(record.grant);
          return invalidRefresh();
        }
      }
      const failure = refreshFailure;
      refreshFailure = undefined;
      if (failure && !failure.afterRotation) return failureResponse(failure.status);
      if (record.spentAtMs === null) {
        record.spentAtMs = now;
        const companion = accessTokens.get(record.companion);
        if (companion) companion.revokedAtMs = now + leewaySeconds * 1000;
      }
      refreshCount++;
      const body = issuePair(record.grant);
      if (failure) return failureResponse(failure.status);
      return { status: 200, json: body };
    }
    return tokenError(403, "unsupported_grant_type", `Unsupported grant type: ${p.grant_type ?? ""}`);
  };

  const failureResponse = (status: number): FakeResponse => ({
    status,
    headers: { "content-type": "text/html; charset=utf-8" },
    text: "<html><body>Service Unavailable</body></html>",
  });

  const gateway = (req: FakeRequest): { record: AccessRecord } | FakeResponse => {
    const token = bearerToken(req.headers);
    const record = token ? accessTokens.get(token) : undefined;
    if (!record || !accessValid(record)) return GATEWAY_UNAUTHORIZED;
    return { record };
  };

  const handle = (req: FakeRequest): FakeResponse => {
    const { method, path } = req;
    if (method === "GET" && path === "/authorize") return authorize(req);
    if (method === "POST" && path === "/oauth/token") return token(req);
    if (method === "GET" && path === "/oauth/token/accessible-resources") {
      const auth = gateway(req);
      if ("status" in auth) return auth;
      const { grant } = auth.record;
      const scopes = grant.scopes.filter((s) => s !== "offline_access");
      return {
        status: 200,
        json: grant.sites.map((site) => ({
          id: site.id,
          url: site.url,
          name: site.name,
          scopes,
          avatarUrl: site.avatarUrl ?? "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png",
        })),
      };
    }
    if (method === "GET" && path === "/me") {
      const auth = gateway(req);
      if ("status" in auth) return auth;
      const { user, scopes } = auth.record.grant;
      if (!scopes.includes("read:me")) return { status: 401, json: { code: 401, message: "Unauthorized; scope does not match" } };
      return {
        status: 200,
        json: {
          account_type: "atlassian",
          account_id: user.accountId,
          email: user.emailAddress,
          name: user.displayName,
          nickname: user.displayName,
          account_status: "active",
        },
      };
    }
    const m = /^\/ex\/jira\/([^/]+)\/rest\/api\/3\/myself$/.exec(path);
    if (method === "GET" && m) {
      const auth = gateway(req);
      if ("status" in auth) return auth;
      const { grant } = auth.record;
      const site = grant.sites.find((s) => s.id === decodeURIComponent(m[1]!));
      if (!site) return { status: 404, json: { errorMessage: "Site temporarily unavailable" } };
      if (!grant.scopes.some((s) => s.includes("jira"))) return { status: 401, json: { code: 401, message: "Unauthorized; scope does not match" } };
      return {
        status: 200,
        json: {
          self: `https://api.atlassian.com/ex/jira/${site.id}/rest/api/3/user?accountId=${encodeURIComponent(grant.user.accountId)}`,
          accountId: grant.user.accountId,
          accountType: "atlassian",
          emailAddress: grant.user.emailAddress,
          avatarUrls: {},
          displayName: grant.user.displayName,
          active: true,
          timeZone: "Etc/UTC",
          locale: "en_US",
        },
      };
    }
    return { status: 404, json: { code: 404, message: "Not Found" } };
  };

  const server = await startFakeServer({ clock, handle });

  return {
    url: server.url,
    requests: server.requests,
    now: clock.now,
    setClockOffset: clock.setClockOffset,
    close: server.close,
    setNextSites(sites) {
      nextSites = sites.map((s) => ({ ...s }));
    },
    setNextUser(user) {
      nextUser = { ...user };
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
    get refreshTokenLeewaySeconds() {
      return leewaySeconds;
    },
    set refreshTokenLeewaySeconds(value: number) {
      leewaySeconds = value;
    },
    expireAccessTokens() {
      const now = clock.now();
      for (const record of accessTokens.values()) record.expiresAtMs = Math.min(record.expiresAtMs, now);
    },
    failNextRefresh(failure) {
      refreshFailure = { ...failure };
    },
    revokeGrant(token) {
      if (token === undefined) {
        for (const grant of grants) revokeGrantRecord(grant);
        return;
      }
      const grant = accessTokens.get(token)?.grant ?? refreshTokens.get(token)?.grant;
      if (!grant) throw new Error("fake Atlassian: unknown token");
      revokeGrantRecord(grant);
    },
    isAccessTokenValid(token) {
      return accessValid(accessTokens.get(token));
    },
  };
}
