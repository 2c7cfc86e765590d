import type { Grant } from "../../domain/session/evolve.ts";
import type { AppDeps } from "../deps.ts";

/** The longest an access token may be asked to live; also how long an unrecorded token stays revoked. */
export const MAX_TTL_SECONDS = 366 * 86400;

export interface IssuedTokens {
  accessToken: string;
  tokenId: string;
  expiresAt: Date;
  refreshToken?: string;
  refreshExpiresAt?: Date;
}

/** Mints a session's access token and refresh token (issueAccessToken with a refresh token, refreshSession). */
export async function mintPair(
  deps: Pick<AppDeps, "minter">,
  tenantId: string,
  familyId: string,
  grant: Grant,
  accessTokenId: string,
  refreshTokenId: string,
  issuedAt: Date,
  expiresAt: Date,
  refreshExpiresAt: Date,
): Promise<IssuedTokens> {
  // An access token never outlives the family it came from.
  const accessExpiresAt = expiresAt < refreshExpiresAt ? expiresAt : refreshExpiresAt;
  const access = await deps.minter.mintAccessToken({ tenantId, ...grant, tokenId: accessTokenId, sessionId: familyId, issuedAt, expiresAt: accessExpiresAt });
  const refreshToken = await deps.minter.mintRefreshToken({
    tenantId,
    subject: grant.subject,
    kind: grant.kind,
    familyId,
    tokenId: refreshTokenId,
    issuedAt,
    expiresAt: refreshExpiresAt,
  });
  return { accessToken: access.token, tokenId: accessTokenId, expiresAt: accessExpiresAt, refreshToken, refreshExpiresAt };
}
