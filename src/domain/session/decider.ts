import type { Decider, StreamName } from "../decider.ts";
import { decideAccessToken, decideSession, type AccessTokenCommand, type SessionCommand } from "./decide.ts";
import type { AccessTokenEvent, SessionEvent } from "./events.ts";
import { evolveAccessToken, evolveSession, initialAccessTokenState, initialSessionState, type AccessTokenState, type SessionState } from "./evolve.ts";

/** A refresh-token family: started once, rotated on each refresh, revoked as a whole. */
export const sessionDecider: Decider<SessionState, SessionCommand, SessionEvent> = {
  initialState: initialSessionState,
  evolve: evolveSession,
  decide: decideSession,
};

/** One access token (a jti) Keyplane minted, or one it was asked to revoke. */
export const accessTokenDecider: Decider<AccessTokenState, AccessTokenCommand, AccessTokenEvent> = {
  initialState: initialAccessTokenState,
  evolve: evolveAccessToken,
  decide: decideAccessToken,
};

/** A session's stream is named by its family id. */
export const sessionStream = (familyId: string): StreamName => ({ streamType: "session", streamId: familyId });

/** An access token's stream is named by its jti, which an external issuer's token has too. */
export const accessTokenStream = (tokenId: string): StreamName => ({ streamType: "access_token", streamId: tokenId });
