import { createHash } from "node:crypto";
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import { roleSchema, tokenKindSchema, type Role, type TokenKind } from "../domain/eventDefinition.ts";
import { makeActor, PLATFORM_TENANT, type Actor } from "./actor.ts";
import { ACCESS_TOKEN_TYPE, REFRESH_TOKEN_TYPE, SIGN_IN_CODE_TYPE } from "./tokenMinter.ts";
import { SIGNING_ALG, type SigningKeys } from "./signingKeys.ts";

/** Why a token was refused: stable strings that go into auth.failed events, never to the caller. */
export type AuthFailureReason =
  | "missing"
  | "malformed"
  | "unsupported-algorithm"
  | "unknown-key"
  | "bad-signature"
  | "expired"
  | "not-yet-valid"
  | "wrong-issuer"
  | "wrong-audience"
  | "wrong-token-type"
  | "invalid-claims"
  | "revoked"
  | "unknown-tenant"
  | "tenant-suspended";

export class AuthFailure extends Error {
  constructor(
    readonly reason: AuthFailureReason,
    /** Set only when the token's signature was verified, so the claim can be trusted. */
    readonly verified?: { tenantId?: string; subject?: string; tokenId?: string },
  ) {
    super(`token refused: ${reason}`);
  }
}

const ClaimsSchema = z.object({
  sub: z.string().min(1),
  tenant_id: z.string().min(1),
  roles: z.array(roleSchema).min(1),
  scope: z.string().optional(),
  kind: tokenKindSchema.optional(),
  jti: z.string().min(1),
  exp: z.number(),
  sid: z.string().optional(),
});

const SignInCodeClaimsSchema = z.object({
  sub: z.string().min(1),
  tenant_id: z.string().min(1),
  roles: z.array(roleSchema).min(1),
  kind: tokenKindSchema,
  jti: z.string().min(1),
  exp: z.number(),
});

/** What a verified sign-in code grants (src/app/sessions/signInCode.ts). */
export interface SignInCodeClaims {
  tenantId: string;
  subject: string;
  kind: TokenKind;
  roles: Role[];
  /** The code's jti: the id of the session it is redeemed for. */
  codeId: string;
  expiresAt: Date;
}

const EXTERNAL_ALGS = ["RS256", "PS256", "ES256", "EdDSA"];

/** Verified access tokens kept per process (by SHA-256, until they expire). */
const VERIFIED_CACHE_SIZE = 10_000;

export interface TokenVerifier {
  verifyAccessToken(token: string): Promise<Actor>;
  verifyRefreshToken(token: string): Promise<{ tenantId: string; subject: string; familyId: string; tokenId: string; kind: TokenKind }>;
  /** A one-time sign-in code: Keyplane's own key and issuer only, its own `typ`, not expired. */
  verifySignInCode(token: string): Promise<SignInCodeClaims>;
  jwks: SigningKeys["jwks"];
}

export function createTokenVerifier(options: {
  keys: SigningKeys;
  issuer: string;
  audience: string;
  external?: { jwksUrl: string; issuer: string; audience: string };
  clockToleranceSeconds?: number;
  /** The clock expiry (exp, nbf) is judged by: deps.now. */
  now?: () => Date;
}): TokenVerifier {
  const now = options.now ?? (() => new Date());
  const localKeys = createLocalJWKSet(options.keys.jwks);
  const external = options.external
    ? { ...options.external, keys: createRemoteJWKSet(new URL(options.external.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000 }) }
    : undefined;
  const tolerance = options.clockToleranceSeconds ?? 5;

  async function verify(token: string, key: JWTVerifyGetKey, issuer: string, audience: string, algorithms: string[], typ: string | undefined) {
    try {
      return await jwtVerify(token, key, { issuer, audience, algorithms, clockTolerance: tolerance, currentDate: now(), ...(typ ? { typ } : {}) });
    } catch (error) {
      throw classify(error);
    }
  }

  async function verifyAccessTokenOnce(token: string): Promise<Actor> {
    const iss = unverifiedIssuer(token);
    let payload: JWTPayload;
    if (iss === options.issuer) {
      ({ payload } = await verify(token, localKeys, options.issuer, options.audience, [SIGNING_ALG], ACCESS_TOKEN_TYPE));
    } else if (external && iss === external.issuer) {
      ({ payload } = await verify(token, external.keys, external.issuer, external.audience, EXTERNAL_ALGS, undefined));
    } else {
      throw new AuthFailure("wrong-issuer");
    }
    const parsed = ClaimsSchema.safeParse(payload);
    if (!parsed.success) throw new AuthFailure("invalid-claims", { subject: payload.sub, tokenId: payload.jti });
    const c = parsed.data;
    // Platform operators exist only in the platform tenant, and only Keyplane mints them (CLI).
    const claimsPlatform = c.roles.includes("platform") || c.tenant_id === PLATFORM_TENANT || c.kind === "platform";
    if (claimsPlatform && (iss !== options.issuer || !c.roles.includes("platform") || c.tenant_id !== PLATFORM_TENANT)) {
      throw new AuthFailure("invalid-claims", { subject: c.sub, tokenId: c.jti });
    }
    const kind = c.kind ?? (c.roles.includes("platform") ? "platform" : c.roles.includes("service") ? "service" : "user");
    return makeActor({
      kind,
      subject: c.sub,
      tenantId: c.tenant_id,
      roles: c.roles,
      scopes: c.scope ? c.scope.split(" ").filter(Boolean) : [],
      tokenId: c.jti,
      sessionId: c.sid,
      issuer: iss,
      expiresAt: new Date(c.exp * 1000),
    });
  }

  // A verified token is verified once: its actor is kept by the token's SHA-256 until it expires (the
  // signature cannot change, and the keys that signed it live as long as the process). Bounded.
  const verified = new Map<string, Actor>();
  const rememberVerified = (digest: string, actor: Actor): Actor => {
    if (verified.size >= VERIFIED_CACHE_SIZE) {
      const at = now().getTime();
      for (const [key, cached] of verified) if (cached.expiresAt.getTime() <= at) verified.delete(key);
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
    }
    verified.set(digest, actor);
    return actor;
  };

  return {
    jwks: options.keys.jwks,
    async verifyAccessToken(token) {
      const digest = createHash("sha256").update(token).digest("base64url");
      const cached = verified.get(digest);
      if (cached && cached.expiresAt.getTime() > now().getTime()) return cached;
      if (cached) verified.delete(digest);
      return rememberVerified(digest, await verifyAccessTokenOnce(token));
    },
    async verifyRefreshToken(token) {
      const { payload } = await verify(token, localKeys, options.issuer, options.audience, [SIGNING_ALG], REFRESH_TOKEN_TYPE);
      const { sub, tenant_id, fam, jti, kind } = payload as Record<string, unknown>;
      if (typeof sub !== "string" || typeof tenant_id !== "string" || typeof fam !== "string" || typeof jti !== "string") {
        throw new AuthFailure("invalid-claims");
      }
      const parsedKind = tokenKindSchema.safeParse(kind);
      return { tenantId: tenant_id, subject: sub, familyId: fam, tokenId: jti, kind: parsedKind.success ? parsedKind.data : "user" };
    },
    async verifySignInCode(token) {
      const { payload } = await verify(token, localKeys, options.issuer, options.audience, [SIGNING_ALG], SIGN_IN_CODE_TYPE);
      const parsed = SignInCodeClaimsSchema.safeParse(payload);
      if (!parsed.success) throw new AuthFailure("invalid-claims", verifiedClaims(payload));
      const c = parsed.data;
      // The platform role, the platform tenant and the platform kind go together or not at all.
      const platform = c.roles.includes("platform");
      if (
        (platform || c.tenant_id === PLATFORM_TENANT || c.kind === "platform") &&
        !(platform && c.roles.length === 1 && c.tenant_id === PLATFORM_TENANT && c.kind === "platform")
      ) {
        throw new AuthFailure("invalid-claims", verifiedClaims(payload));
      }
      return { tenantId: c.tenant_id, subject: c.sub, kind: c.kind, roles: c.roles, codeId: c.jti, expiresAt: new Date(c.exp * 1000) };
    },
  };
}

function unverifiedIssuer(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === "string" ? iss : undefined;
  } catch {
    throw new AuthFailure("malformed");
  }
}

function verifiedClaims(payload: JWTPayload | undefined) {
  if (!payload) return undefined;
  const tenantId = typeof payload.tenant_id === "string" ? payload.tenant_id : undefined;
  return { tenantId, subject: payload.sub, tokenId: payload.jti };
}

function classify(error: unknown): AuthFailure {
  if (error instanceof AuthFailure) return error;
  if (error instanceof errors.JWTExpired) return new AuthFailure("expired", verifiedClaims(error.payload));
  if (error instanceof errors.JWTClaimValidationFailed) {
    const verified = verifiedClaims(error.payload);
    if (error.claim === "nbf" || error.claim === "iat") return new AuthFailure("not-yet-valid", verified);
    if (error.claim === "iss") return new AuthFailure("wrong-issuer", verified);
    if (error.claim === "aud") return new AuthFailure("wrong-audience", verified);
    if (error.claim === "typ") return new AuthFailure("wrong-token-type", verified);
    return new AuthFailure("invalid-claims", verified);
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return new AuthFailure("unsupported-algorithm");
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return new AuthFailure("unknown-key");
  if (error instanceof errors.JWSSignatureVerificationFailed) return new AuthFailure("bad-signature");
  return new AuthFailure("malformed");
}
