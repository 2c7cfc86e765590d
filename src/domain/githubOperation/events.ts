import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// What a principal did on GitHub through Keyplane, each on a stream of its own. URLs and numbers,
// never tokens: the credential used is named by how it was obtained (`via`) and its fingerprint.

const credential = {
  app: z.string(),
  /** identity: the principal's linked GitHub account; installation: a token policy's installation token. */
  via: z.enum(["identity", "installation"]),
  /** The linked identity used (via identity). */
  identityId: z.string().optional(),
  /** The token.issued record of the installation token used (via installation). */
  githubTokenId: z.string().optional(),
  fingerprint: z.string(),
  /** The GitHub account that acted: the identity's login, or the app's bot. */
  actedAs: z.string(),
};

export const GitHubForked = defineEvent("github.forked", 1, z.object({ repository: z.string(), fork: z.string(), forkUrl: z.string(), ...credential }));

export const GitHubCommitted = defineEvent(
  "github.committed",
  1,
  z.object({
    repository: z.string(),
    branch: z.string(),
    /** The branch was made from this one for the commit. */
    createdFrom: z.string().optional(),
    path: z.string(),
    commitSha: z.string(),
    commitUrl: z.string().optional(),
    ...credential,
  }),
);

export const GitHubPullRequestOpened = defineEvent(
  "github.pull_request_opened",
  1,
  z.object({ repository: z.string(), number: z.number().int(), url: z.string(), head: z.string(), base: z.string(), title: z.string(), ...credential }),
);

export const githubOperationEvents = [GitHubForked, GitHubCommitted, GitHubPullRequestOpened] as const;
export type GitHubOperationEvent = EventOf<(typeof githubOperationEvents)[number]>;
