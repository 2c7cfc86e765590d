import { ConflictError, UnauthenticatedError } from "../../errors.ts";
import { AccessTokenIssued, AccessTokenRevoked, SessionRefreshed, SessionRevoked, SessionStarted, type AccessTokenEvent, type SessionEvent } from "./events.ts";
import type { AccessTokenState, Grant, SessionState } from "./evolve.ts";

export type AccessTokenCommand =
  | { type: "IssueAccessToken"; tokenId: string; grant: Grant; expiresAt: string; issuedVia: "api" | "cli" | "bootstrap" | "enrollment" }
  | { type: "RevokeAccessToken"; tokenId: string; reason: string; expiresAt: string };

export function decideAccessToken(command: AccessTokenCommand, state: AccessTokenState): AccessTokenEvent[] {
  switch (command.type) {
    case "IssueAccessToken":
      if (state.known) throw new ConflictError(`token ${command.tokenId} already issued`);
      return [AccessTokenIssued({ tokenId: command.tokenId, ...command.grant, expiresAt: command.expiresAt, issuedVia: command.issuedVia })];
    case "RevokeAccessToken":
      // Revoking twice changes nothing and records nothing.
      if (state.revoked) return [];
      return [AccessTokenRevoked({ tokenId: command.tokenId, reason: command.reason, expiresAt: state.expiresAt ?? command.expiresAt })];
  }
}

export type SessionCommand =
  | { type: "StartSession"; familyId: string; grant: Grant; refreshTokenId: string; accessTokenId: string; expiresAt: string }
  | { type: "RefreshSession"; presentedRefreshTokenId: string; refreshTokenId: string; accessTokenId: string; now: string }
  | { type: "RevokeSession"; reason: "revoked" };

const SESSION_INVALID = "refresh token is invalid, expired or revoked";

/**
 * Refresh-token rotation with reuse detection (OAuth 2.0 Security BCP): presenting a refresh token
 * that was already spent revokes the whole family, because either the client or a thief holds a copy.
 */
export function decideSession(command: SessionCommand, state: SessionState): SessionEvent[] {
  switch (command.type) {
    case "StartSession":
      if (state.exists) throw new ConflictError(`session ${command.familyId} already exists`);
      return [
        SessionStarted({
          familyId: command.familyId,
          ...command.grant,
          refreshTokenId: command.refreshTokenId,
          accessTokenId: command.accessTokenId,
          expiresAt: command.expiresAt,
        }),
      ];
    case "RefreshSession": {
      if (!state.exists || state.revoked || state.expiresAt <= command.now) throw new UnauthenticatedError(SESSION_INVALID);
      if (command.presentedRefreshTokenId !== state.currentRefreshTokenId) {
        return [SessionRevoked({ familyId: state.familyId, reason: "refresh-token-reuse", expiresAt: state.expiresAt })];
      }
      return [
        SessionRefreshed({
          familyId: state.familyId,
          previousRefreshTokenId: state.currentRefreshTokenId,
          refreshTokenId: command.refreshTokenId,
          accessTokenId: command.accessTokenId,
        }),
      ];
    }
    case "RevokeSession":
      if (!state.exists || state.revoked) return [];
      return [SessionRevoked({ familyId: state.familyId, reason: command.reason, expiresAt: state.expiresAt })];
  }
}

export { SESSION_INVALID };
