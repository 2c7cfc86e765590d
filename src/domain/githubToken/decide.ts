import { ConflictError, NotFoundError } from "../../errors.ts";
import { GitHubTokenIssued, GitHubTokenRevoked, type GitHubTokenEvent } from "./events.ts";
import type { GitHubTokenState } from "./evolve.ts";

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
