import { randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { fingerprint } from "../../crypto/fingerprint.ts";
import { GitHubCommitted, GitHubForked, GitHubPullRequestOpened, type GitHubOperationEvent } from "../../domain/githubOperation/events.ts";
import { parseInput } from "../../domain/validation.ts";
import { BadInputError, ForbiddenError, NotFoundError } from "../../errors.ts";
import {
  branchHead,
  commitFile,
  createBranch,
  defaultBranch,
  forkRepository,
  openPullRequest,
  type RepositoryApi,
  type RepositoryRef,
} from "../../github/repositoryOperations.ts";
import { withTenant } from "../../store/db.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import { findPrincipalIdentity } from "../../store/queries/identityQueries.ts";
import type { AppDeps } from "../deps.ts";
import { issueGitHubToken } from "../githubTokens/issueGitHubToken.ts";
import { currentIdentityTokens } from "../identities/identityTokens.ts";

// An agent's (or a service's) contribution on GitHub, made by Keyplane so the token never leaves it:
// fork a repository, commit a file to a branch, open a pull request. Each acts as the principal's
// linked GitHub identity (the fork and the pull request are that account's) or, with `as:
// installation` or when the principal has linked none, with an installation token a token policy
// allows, narrowed to the repository and to the permissions the operation needs. Each success is one
// event; a refusal (no identity, no policy) is FORBIDDEN with an access.denied security event.

type Deps = Pick<AppDeps, "db" | "config" | "keyring" | "githubApps" | "tokenCache" | "security" | "metrics" | "logger" | "now">;

const login = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, "a GitHub account login");
const repository = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_.-]{1,39}\/[A-Za-z0-9_.-]{1,100}$/, "owner/name");
// git-check-ref-format, the parts that matter here: no spaces, control characters, `..`, `~^:?*[\`, leading `-` or `/`.
const branch = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^(?!-|\/)(?!.*\.\.)(?!.*\/\/)(?!.*\.lock$)(?!.*[/.]$)[^\s~^:?*[\\\p{Cc}]+$/u, "a branch name");
const via = z.enum(["identity", "installation"]).optional();
const app = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a GitHub App name as configured (e.g. rex)")
  .optional();

export const GitHubForkInput = z.object({ repository, organization: login.optional(), app, as: via });
export const GitHubCommitFileInput = z.object({
  repository,
  branch,
  /** Where a branch that does not exist yet starts: this branch's head, else the repository's default branch. */
  fromBranch: branch.optional(),
  path: z
    .string()
    .trim()
    .min(1)
    .max(1024)
    .refine((p) => !p.startsWith("/") && !p.split("/").some((part) => part === "" || part === "." || part === ".."), "a relative path without . or .. parts"),
  content: z.string().max(512 * 1024, "at most 512 KiB"),
  message: z.string().trim().min(1).max(1000),
  app,
  as: via,
});
export const GitHubPullRequestInput = z.object({
  repository,
  /** A branch of `repository`, or `owner:branch` of a fork. */
  head: z
    .string()
    .trim()
    .min(1)
    .max(240)
    .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}):)?[^\s~^:?*[\\\p{Cc}]+$/u, "a branch, or owner:branch of a fork"),
  base: branch,
  title: z.string().trim().min(1).max(256),
  body: z.string().max(65_536).optional(),
  app,
  as: via,
});

/** What acted on GitHub: a token and how it was obtained (recorded; the token never is). */
interface Acting {
  token: string;
  app: string;
  via: "identity" | "installation";
  identityId?: string;
  githubTokenId?: string;
  actedAs: string;
}

const split = (fullName: string): RepositoryRef => {
  const [owner, name] = fullName.split("/") as [string, string];
  return { owner, name };
};

const api = (deps: Pick<AppDeps, "config">): RepositoryApi => ({ apiUrl: deps.config.githubApps.apiUrl, timeoutMs: deps.config.githubApps.timeoutMs });

/**
 * The credential an operation acts with. `installation`: an installation token of `owner`'s
 * installation as far as a token policy allows `permissions` on `repositories` (recorded as
 * token.issued). Otherwise the principal's linked identity; without one, an installation token
 * where a policy allows it, else FORBIDDEN.
 */
async function acting(
  deps: Deps,
  actor: Actor,
  request: RequestMeta,
  want: {
    app?: string;
    as?: "identity" | "installation";
    owner: string;
    repositories: string[];
    permissions: Record<string, "read" | "write" | "admin">;
    action: string;
  },
): Promise<Acting> {
  const appName = want.app ?? deps.githubApps.defaultApp;
  if (!appName || !deps.githubApps.registry.get(appName))
    throw new BadInputError(want.app ? `app: no GitHub App named ${want.app} is configured` : "app: no GitHub App is configured", "app");
  if (want.as !== "installation") {
    const identity = await withTenant(deps.db, actor.tenantId, (trx) => findPrincipalIdentity(trx, actor.tenantId, actor.subject, appName));
    if (identity) {
      const tokens = await currentIdentityTokens(deps, actor.tenantId, identity.identity_id);
      return { token: tokens.accessToken, app: appName, via: "identity", identityId: identity.identity_id, actedAs: identity.login };
    }
    if (want.as === "identity") {
      await deps.security.accessDenied({
        tenantId: actor.tenantId,
        actor,
        reason: "no-linked-identity",
        resource: "github",
        action: want.action,
        details: { app: appName, owner: want.owner },
        request,
      });
      throw new ForbiddenError(`${actor.subject} has no linked GitHub identity for the app ${appName}: link one (startIdentityLink)`);
    }
  }
  try {
    const issued = await issueGitHubToken(
      deps,
      actor,
      { app: appName, owner: want.owner, repositories: want.repositories, permissions: want.permissions, minValiditySeconds: 300 },
      request,
    );
    const slug = deps.githubApps.registry.get(appName)?.slug ?? appName;
    return { token: issued.token, app: appName, via: "installation", githubTokenId: issued.id, actedAs: `${slug}[bot]` };
  } catch (error) {
    // Neither credential: the answer names both (the installation path's reason after it).
    if ((error instanceof ForbiddenError || error instanceof NotFoundError) && want.as === undefined) {
      throw new ForbiddenError(`${actor.subject} has no linked GitHub identity for the app ${appName}, and no installation token: ${error.message}`);
    }
    throw error;
  }
}

/** Records the operation on a stream of its own (committing on its own), once GitHub did it. */
async function record(deps: Deps, actor: Actor, request: RequestMeta, event: GitHubOperationEvent): Promise<void> {
  await appendEvents(deps.db, {
    tenantId: actor.tenantId,
    streamType: "github_operation",
    streamId: randomUUID(),
    expectedVersion: 0,
    events: [event],
    metadata: eventMetadata(actor, request),
    occurredAt: deps.now(),
  });
}

const facts = (who: Acting) => ({
  app: who.app,
  via: who.via,
  ...(who.identityId ? { identityId: who.identityId } : {}),
  ...(who.githubTokenId ? { githubTokenId: who.githubTokenId } : {}),
  fingerprint: fingerprint(who.token),
  actedAs: who.actedAs,
});

export interface ForkResult {
  repository: string;
  fork: string;
  url: string;
  owner: string;
  defaultBranch: string;
  via: "identity" | "installation";
  actedAs: string;
}

/**
 * Forks `repository` into the principal's GitHub account (its linked identity) or, with an
 * installation token, into `organization`, where the app is installed with administration: write.
 */
export async function githubFork(deps: Deps, actor: Actor, rawInput: z.input<typeof GitHubForkInput>, request: RequestMeta = {}): Promise<ForkResult> {
  const input = parseInput(GitHubForkInput, rawInput);
  const source = split(input.repository);
  if (input.as === "installation" && !input.organization)
    throw new BadInputError("organization: a fork made with an installation token goes into the organization the app is installed on; name it", "organization");
  const who = await acting(deps, actor, request, {
    app: input.app,
    // Into the principal's own account only its identity can fork; into an organization, either.
    as: input.as ?? (input.organization ? undefined : "identity"),
    owner: input.organization ?? source.owner,
    repositories: [],
    permissions: { administration: "write", contents: "read" },
    action: "github:fork",
  });
  const fork = await forkRepository(api(deps), who.token, source, { organization: input.organization });
  await record(deps, actor, request, GitHubForked({ repository: input.repository, fork: fork.fullName, forkUrl: fork.url, ...facts(who) }));
  return {
    repository: input.repository,
    fork: fork.fullName,
    url: fork.url,
    owner: fork.owner,
    defaultBranch: fork.defaultBranch,
    via: who.via,
    actedAs: who.actedAs,
  };
}

export interface CommitResult {
  repository: string;
  branch: string;
  path: string;
  commitSha: string;
  commitUrl?: string;
  createdFrom?: string;
  via: "identity" | "installation";
  actedAs: string;
}

/** Commits one file to `branch` of `repository` through the contents API, making the branch first (from `fromBranch` or the default branch) when it does not exist. */
export async function githubCommitFile(
  deps: Deps,
  actor: Actor,
  rawInput: z.input<typeof GitHubCommitFileInput>,
  request: RequestMeta = {},
): Promise<CommitResult> {
  const input = parseInput(GitHubCommitFileInput, rawInput);
  const repo = split(input.repository);
  const who = await acting(deps, actor, request, {
    app: input.app,
    as: input.as,
    owner: repo.owner,
    repositories: [repo.name],
    permissions: { contents: "write" },
    action: "github:commit",
  });
  let createdFrom: string | undefined;
  if ((await branchHead(api(deps), who.token, repo, input.branch)) === undefined) {
    createdFrom = input.fromBranch ?? (await defaultBranch(api(deps), who.token, repo));
    const from = await branchHead(api(deps), who.token, repo, createdFrom);
    if (!from) throw new BadInputError(`fromBranch: ${input.repository} has no branch ${createdFrom}`, "fromBranch");
    await createBranch(api(deps), who.token, repo, input.branch, from);
  }
  const commit = await commitFile(api(deps), who.token, repo, { branch: input.branch, path: input.path, content: input.content, message: input.message });
  await record(
    deps,
    actor,
    request,
    GitHubCommitted({
      repository: input.repository,
      branch: input.branch,
      ...(createdFrom ? { createdFrom } : {}),
      path: input.path,
      commitSha: commit.commitSha,
      ...(commit.commitUrl ? { commitUrl: commit.commitUrl } : {}),
      ...facts(who),
    }),
  );
  return { repository: input.repository, branch: input.branch, path: input.path, ...commit, createdFrom, via: who.via, actedAs: who.actedAs };
}

export interface PullRequestResult {
  repository: string;
  number: number;
  url: string;
  head: string;
  base: string;
  via: "identity" | "installation";
  actedAs: string;
}

/** Opens a pull request on `repository` from `head` (a branch, or owner:branch of a fork) into `base`. */
export async function githubCreatePullRequest(
  deps: Deps,
  actor: Actor,
  rawInput: z.input<typeof GitHubPullRequestInput>,
  request: RequestMeta = {},
): Promise<PullRequestResult> {
  const input = parseInput(GitHubPullRequestInput, rawInput);
  const base = split(input.repository);
  const who = await acting(deps, actor, request, {
    app: input.app,
    as: input.as,
    owner: base.owner,
    repositories: [base.name],
    // Reading the branches the pull request joins takes contents: read beside pull_requests: write.
    permissions: { pull_requests: "write", contents: "read" },
    action: "github:pull-request",
  });
  const pull = await openPullRequest(api(deps), who.token, base, { head: input.head, base: input.base, title: input.title, body: input.body });
  await record(
    deps,
    actor,
    request,
    GitHubPullRequestOpened({
      repository: input.repository,
      number: pull.number,
      url: pull.url,
      head: input.head,
      base: input.base,
      title: input.title,
      ...facts(who),
    }),
  );
  return { repository: input.repository, ...pull, head: input.head, base: input.base, via: who.via, actedAs: who.actedAs };
}
