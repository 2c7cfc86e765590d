import { isDeepStrictEqual } from "node:util";
import { ConflictError, NotFoundError } from "../../errors.ts";
import { GitHubTokenIssued, GitHubTokenRevoked, TokenPolicyDeleted, TokenPolicySet, type GitHubTokenEvent } from "./events.ts";
import type { TokenPolicy } from "./policy.ts";

export type TokenPolicyState = { exists: false } | { exists: true; policy: TokenPolicy };
export type GitHubTokenState = { exists: false } | { exists: true; tokenId: string; fingerprint: string; requester: string; expiresAt: string; revoked: boolean };

export const initialTokenPolicyState = (): TokenPolicyState => ({ exists: false });
export const initialGitHubTokenState = (): GitHubTokenState => ({ exists: false });

export function evolveTokenPolicy(state: TokenPolicyState, event: GitHubTokenEvent): TokenPolicyState {
  if (event.type === "token_policy.set") return { exists: true, policy: event.data as TokenPolicy };
  if (event.type === "token_policy.deleted") return { exists: false };
  return state;
}

export function evolveGitHubToken(state: GitHubTokenState, event: GitHubTokenEvent): GitHubTokenState {
  if (event.type === "token.issued") return { exists: true, tokenId: event.data.tokenId, fingerprint: event.data.fingerprint, requester: event.data.requester, expiresAt: event.data.expiresAt, revoked: false };
  if (event.type === "token.revoked" && state.exists) return { ...state, revoked: true };
  return state;
}

export type TokenPolicyCommand = { type: "SetTokenPolicy"; policy: TokenPolicy } | { type: "DeleteTokenPolicy"; name: string };

export function decideTokenPolicy(command: TokenPolicyCommand, state: TokenPolicyState): GitHubTokenEvent[] {
  switch (command.type) {
    case "SetTokenPolicy":
      // Setting the same policy again records nothing.
      if (state.exists && isDeepStrictEqual(state.policy, command.policy)) return [];
      return [TokenPolicySet(command.policy)];
    case "DeleteTokenPolicy":
      if (!state.exists) throw new NotFoundError(`token policy ${command.name}`);
      return [TokenPolicyDeleted({ name: command.name })];
  }
}

export type GitHubTokenCommand =
  | { type: "IssueGitHubToken"; data: Parameters<typeof GitHubTokenIssued>[0] }
  | { type: "RevokeGitHubToken"; reason: string; revokedAtGitHub: boolean };

export function decideGitHubToken(command: GitHubTokenCommand, state: GitHubTokenState): GitHubTokenEvent[] {
  switch (command.type) {
    case "IssueGitHubToken":
      if (state.exists) throw new ConflictError(`token ${command.data.tokenId} already issued`);
      return [GitHubTokenIssued(command.data)];
    case "RevokeGitHubToken":
      if (!state.exists) throw new NotFoundError("token");
      if (state.revoked) return [];
      return [GitHubTokenRevoked({ tokenId: state.tokenId, fingerprint: state.fingerprint, reason: command.reason, revokedAtGitHub: command.revokedAtGitHub })];
  }
}
