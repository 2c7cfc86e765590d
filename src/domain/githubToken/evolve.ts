import type { GitHubTokenEvent } from "./events.ts";

export type GitHubTokenState =
  | { exists: false }
  | { exists: true; tokenId: string; fingerprint: string; requester: string; expiresAt: string; revoked: boolean };

export const initialGitHubTokenState = (): GitHubTokenState => ({ exists: false });

export function evolveGitHubToken(state: GitHubTokenState, event: GitHubTokenEvent): GitHubTokenState {
  if (event.type === "token.issued")
    return {
      exists: true,
      tokenId: event.data.tokenId,
      fingerprint: event.data.fingerprint,
      requester: event.data.requester,
      expiresAt: event.data.expiresAt,
      revoked: false,
    };
  if (event.type === "token.revoked" && state.exists) return { ...state, revoked: true };
  return state;
}
