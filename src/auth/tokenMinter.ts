import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { Role, TokenKind } from "../domain/eventDefinition.ts";
import { SIGNING_ALG, type SigningKeys } from "./signingKeys.ts";

export const ACCESS_TOKEN_TYPE = "at+jwt"; // RFC 9068
export const REFRESH_TOKEN_TYPE = "kp-refresh+jwt";
/** A one-time sign-in code (`keyplane console link`): redeemed once for a session, never a bearer token. */
export const SIGN_IN_CODE_TYPE = "kp-sign-in+jwt";

export interface AccessTokenClaims {
  tenantId: string;
  subject: string;
  kind: TokenKind;
  roles: Role[];
  scopes: string[];
  tokenId?: string;
  sessionId?: string;
  /** The instant the lifetime was counted from, so exp - iat is exactly the lifetime asked for. */
  issuedAt: Date;
  expiresAt: Date;
}

export interface TokenMinter {
  mintAccessToken(claims: AccessTokenClaims): Promise<{ token: string; tokenId: string; expiresAt: Date }>;
  mintRefreshToken(claims: {
    tenantId: string;
    subject: string;
    kind: TokenKind;
    familyId: string;
    tokenId: string;
    issuedAt: Date;
    expiresAt: Date;
  }): Promise<string>;
  /** The code's jti (codeId) becomes the id of the session it is redeemed for. */
  mintSignInCode(claims: {
    tenantId: string;
    subject: string;
    kind: TokenKind;
    roles: Role[];
    codeId: string;
    issuedAt: Date;
    expiresAt: Date;
  }): Promise<string>;
}

export function createTokenMinter(keys: SigningKeys, issuer: string, audience: string): TokenMinter {
  const sign = (payload: Record<string, unknown>, typ: string, subject: string, tokenId: string, issuedAt: Date, expiresAt: Date) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: SIGNING_ALG, kid: keys.current.kid, typ })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(subject)
      .setJti(tokenId)
      .setIssuedAt(Math.floor(issuedAt.getTime() / 1000))
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(keys.current.privateKey);

  return {
    async mintAccessToken(c) {
      const tokenId = c.tokenId ?? randomUUID();
      const payload: Record<string, unknown> = { tenant_id: c.tenantId, roles: c.roles, kind: c.kind };
      if (c.scopes.length) payload.scope = c.scopes.join(" ");
      if (c.sessionId) payload.sid = c.sessionId;
      return { token: await sign(payload, ACCESS_TOKEN_TYPE, c.subject, tokenId, c.issuedAt, c.expiresAt), tokenId, expiresAt: c.expiresAt };
    },
    mintRefreshToken(c) {
      return sign({ tenant_id: c.tenantId, fam: c.familyId, kind: c.kind }, REFRESH_TOKEN_TYPE, c.subject, c.tokenId, c.issuedAt, c.expiresAt);
    },
    mintSignInCode(c) {
      return sign({ tenant_id: c.tenantId, roles: c.roles, kind: c.kind }, SIGN_IN_CODE_TYPE, c.subject, c.codeId, c.issuedAt, c.expiresAt);
    },
  };
}
