import type { Role, TokenKind } from "../eventDefinition.ts";
import type { AccessTokenEvent, SessionEvent } from "./events.ts";

export interface Grant {
  subject: string;
  kind: TokenKind;
  roles: Role[];
  scopes: string[];
}

export interface AccessTokenState {
  known: boolean;
  revoked: boolean;
  expiresAt?: string;
}

export const initialAccessTokenState = (): AccessTokenState => ({ known: false, revoked: false });

export function evolveAccessToken(state: AccessTokenState, event: AccessTokenEvent): AccessTokenState {
  switch (event.type) {
    case "access_token.issued":
      return { known: true, revoked: false, expiresAt: event.data.expiresAt };
    case "access_token.revoked":
      return { ...state, revoked: true, expiresAt: state.expiresAt ?? event.data.expiresAt };
  }
}

export type SessionState =
  | { exists: false }
  | { exists: true; familyId: string; grant: Grant; currentRefreshTokenId: string; revoked: boolean; expiresAt: string };

export const initialSessionState = (): SessionState => ({ exists: false });

export function evolveSession(state: SessionState, event: SessionEvent): SessionState {
  switch (event.type) {
    case "session.started": {
      const { familyId, subject, kind, roles, scopes, refreshTokenId, expiresAt } = event.data;
      return { exists: true, familyId, grant: { subject, kind, roles, scopes }, currentRefreshTokenId: refreshTokenId, revoked: false, expiresAt };
    }
    case "session.refreshed":
      return state.exists ? { ...state, currentRefreshTokenId: event.data.refreshTokenId } : state;
    case "session.revoked":
      return state.exists ? { ...state, revoked: true } : state;
  }
}
