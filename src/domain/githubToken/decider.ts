import type { Decider, StreamName } from "../decider.ts";
import { decideGitHubToken, type GitHubTokenCommand } from "./decide.ts";
import type { GitHubTokenEvent } from "./events.ts";
import { evolveGitHubToken, initialGitHubTokenState, type GitHubTokenState } from "./evolve.ts";

export const githubTokenDecider: Decider<GitHubTokenState, GitHubTokenCommand, GitHubTokenEvent> = {
  initialState: initialGitHubTokenState,
  evolve: evolveGitHubToken,
  decide: decideGitHubToken,
};

/** Each token handed out is its own stream; its id is a Keyplane UUID, never the token. */
export const githubTokenStream = (tokenId: string): StreamName => ({ streamType: "github_token", streamId: tokenId });
