import {
  githubCommitFile,
  githubCreatePullRequest,
  githubFork,
  type CommitResult,
  type ForkResult,
  type PullRequestResult,
} from "../../app/githubOperations/githubOperations.ts";
import { builder } from "../builder.ts";

// Contributions on GitHub made by Keyplane for agents and services (github:operate): as the caller's
// linked identity, or with an installation token a token policy allows. Each is a github.* event.

const ActingCredential = builder.enumType("GitHubActingCredential", {
  values: {
    identity: { description: "The caller's linked GitHub identity: what it makes is that account's" },
    installation: { description: "An installation token a token policy allows, narrowed to the repository and the permissions the operation needs" },
  } as const,
});

const ACTING = "Which credential acts; default: the linked identity when the caller has one, else an installation token where a token policy allows it";

const GitHubForkInput = builder.inputType("GitHubForkInput", {
  fields: (t) => ({
    repository: t.string({ required: true, description: "owner/name of the repository to fork" }),
    organization: t.string({ required: false, description: "Fork into this organization instead of the identity's own account" }),
    app: t.string({ required: false, description: "A configured GitHub App (default: the default app)" }),
    as: t.field({ type: ActingCredential, required: false, description: ACTING }),
  }),
});

const GitHubCommitFileInput = builder.inputType("GitHubCommitFileInput", {
  fields: (t) => ({
    repository: t.string({ required: true, description: "owner/name (a fork, usually)" }),
    branch: t.string({ required: true, description: "Made first when it does not exist" }),
    fromBranch: t.string({ required: false, description: "Where a new branch starts (default: the repository's default branch)" }),
    path: t.string({ required: true }),
    content: t.string({ required: true, description: "The file's new content (UTF-8, at most 512 KiB)" }),
    message: t.string({ required: true, description: "The commit message" }),
    app: t.string({ required: false, description: "A configured GitHub App (default: the default app)" }),
    as: t.field({ type: ActingCredential, required: false, description: ACTING }),
  }),
});

const GitHubPullRequestInput = builder.inputType("GitHubPullRequestInput", {
  fields: (t) => ({
    repository: t.string({ required: true, description: "owner/name of the repository the pull request is opened on" }),
    head: t.string({ required: true, description: "A branch of it, or owner:branch of a fork" }),
    base: t.string({ required: true }),
    title: t.string({ required: true }),
    body: t.string({ required: false }),
    app: t.string({ required: false, description: "A configured GitHub App (default: the default app)" }),
    as: t.field({ type: ActingCredential, required: false, description: ACTING }),
  }),
});

const GitHubFork = builder.objectRef<ForkResult>("GitHubFork").implement({
  fields: (t) => ({
    repository: t.exposeString("repository", { description: "What was forked" }),
    fork: t.exposeString("fork", { description: "owner/name of the fork" }),
    url: t.exposeString("url"),
    owner: t.exposeString("owner", { description: "The account the fork belongs to" }),
    defaultBranch: t.exposeString("defaultBranch"),
    via: t.field({ type: ActingCredential, resolve: (r) => r.via }),
    actedAs: t.exposeString("actedAs", { description: "The GitHub account that acted: the identity's login or the app's bot" }),
  }),
});

const GitHubCommit = builder.objectRef<CommitResult>("GitHubCommit").implement({
  fields: (t) => ({
    repository: t.exposeString("repository"),
    branch: t.exposeString("branch"),
    createdFrom: t.exposeString("createdFrom", { nullable: true, description: "The branch a new branch was made from" }),
    path: t.exposeString("path"),
    commitSha: t.exposeString("commitSha"),
    commitUrl: t.exposeString("commitUrl", { nullable: true }),
    via: t.field({ type: ActingCredential, resolve: (r) => r.via }),
    actedAs: t.exposeString("actedAs"),
  }),
});

const GitHubPullRequest = builder.objectRef<PullRequestResult>("GitHubPullRequest").implement({
  fields: (t) => ({
    repository: t.exposeString("repository"),
    number: t.exposeInt("number"),
    url: t.exposeString("url"),
    head: t.exposeString("head"),
    base: t.exposeString("base"),
    via: t.field({ type: ActingCredential, resolve: (r) => r.via }),
    actedAs: t.exposeString("actedAs"),
  }),
});

builder.mutationField("githubFork", (t) =>
  t.withAuth({ permission: "github:operate" }).field({
    type: GitHubFork,
    description: "Forks a repository into the caller's GitHub account (its linked identity) or an organization. Recorded as github.forked.",
    args: { input: t.arg({ type: GitHubForkInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      githubFork(
        ctx.deps,
        ctx.actor,
        { repository: input.repository, organization: input.organization ?? undefined, app: input.app ?? undefined, as: input.as ?? undefined },
        ctx.meta,
      ),
  }),
);

builder.mutationField("githubCommitFile", (t) =>
  t.withAuth({ permission: "github:operate" }).field({
    type: GitHubCommit,
    description: "Commits one file to a branch through GitHub's contents API (the branch made first when new). Recorded as github.committed.",
    args: { input: t.arg({ type: GitHubCommitFileInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      githubCommitFile(
        ctx.deps,
        ctx.actor,
        {
          repository: input.repository,
          branch: input.branch,
          fromBranch: input.fromBranch ?? undefined,
          path: input.path,
          content: input.content,
          message: input.message,
          app: input.app ?? undefined,
          as: input.as ?? undefined,
        },
        ctx.meta,
      ),
  }),
);

builder.mutationField("githubCreatePullRequest", (t) =>
  t.withAuth({ permission: "github:operate" }).field({
    type: GitHubPullRequest,
    description: "Opens a pull request (from a fork: head owner:branch). Recorded as github.pull_request_opened with its number and URL.",
    args: { input: t.arg({ type: GitHubPullRequestInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      githubCreatePullRequest(
        ctx.deps,
        ctx.actor,
        {
          repository: input.repository,
          head: input.head,
          base: input.base,
          title: input.title,
          body: input.body ?? undefined,
          app: input.app ?? undefined,
          as: input.as ?? undefined,
        },
        ctx.meta,
      ),
  }),
);
