import { issueGitHubToken, type IssuedGitHubToken } from "../../app/githubTokens/issueGitHubToken.ts";
import { revokeGitHubToken } from "../../app/githubTokens/revokeGitHubToken.ts";
import { deleteTokenPolicy, setTokenPolicy } from "../../app/githubTokens/tokenPolicies.ts";
import { withTenant } from "../../store/db.ts";
import { listIssuedTokens, listTokenPolicies, type IssuedTokenRow, type TokenPolicyRow } from "../../store/queries/githubTokenQueries.ts";
import { builder } from "../builder.ts";
import { connectionType, pageArgs, timeIdCursor } from "../pagination.ts";

const TokenPolicy = builder.objectRef<TokenPolicyRow>("TokenPolicy").implement({
  description: "Who may obtain which GitHub App's tokens, for which repositories, with at most which permissions",
  fields: (t) => ({
    name: t.exposeString("name"),
    app: t.exposeString("app"),
    roles: t.stringList({ resolve: (p) => p.roles }),
    subjects: t.stringList({ resolve: (p) => p.subjects }),
    agentTags: t.stringList({ resolve: (p) => p.agent_tags }),
    repositories: t.stringList({ description: "owner/name, owner/prefix-* or owner/*", resolve: (p) => p.repositories }),
    permissions: t.field({ type: "JSON", description: "permission -> highest access level (read, write, admin)", resolve: (p) => p.permissions }),
    version: t.exposeInt("version"),
    updatedBy: t.exposeString("updated_by"),
    updatedAt: t.field({ type: "DateTime", resolve: (p) => p.updated_at }),
  }),
});

const TokenPolicyInput = builder.inputType("TokenPolicyInput", {
  fields: (t) => ({
    name: t.string({ required: true, description: "slug; setting an existing name replaces that policy" }),
    app: t.string({ required: true, description: "a configured GitHub App, e.g. rex" }),
    roles: t.stringList({ required: false }),
    subjects: t.stringList({ required: false }),
    agentTags: t.stringList({ required: false }),
    repositories: t.stringList({ required: true }),
    permissions: t.field({ type: "JSON", required: true, description: 'e.g. {"contents": "read", "pull_requests": "write"}' }),
  }),
});

builder.queryField("tokenPolicies", (t) =>
  t.withAuth({ permission: "token-policy:read" }).field({
    type: [TokenPolicy],
    args: { app: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => withTenant(ctx.deps.db, ctx.actor.tenantId, (trx) => listTokenPolicies(trx, ctx.actor.tenantId, args.app)),
  }),
);

builder.mutationField("setTokenPolicy", (t) =>
  t.withAuth({ permission: "token-policy:manage" }).field({
    type: TokenPolicy,
    args: { input: t.arg({ type: TokenPolicyInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      setTokenPolicy(
        ctx.deps,
        ctx.actor,
        {
          name: input.name,
          app: input.app,
          roles: (input.roles ?? []) as never[],
          subjects: input.subjects ?? [],
          agentTags: input.agentTags ?? [],
          repositories: input.repositories,
          permissions: input.permissions as never,
        },
        ctx.meta,
      ),
  }),
);

builder.mutationField("deleteTokenPolicy", (t) =>
  t.withAuth({ permission: "token-policy:manage" }).field({
    type: "Boolean",
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => deleteTokenPolicy(ctx.deps, ctx.actor, args.name, ctx.meta),
  }),
);

const IssuedGitHubTokenRef = builder.objectRef<IssuedGitHubToken>("IssuedGitHubToken").implement({
  description: "A GitHub App installation token. Shown once; Keyplane records only its fingerprint.",
  fields: (t) => ({
    id: t.exposeID("id"),
    token: t.exposeString("token"),
    expiresAt: t.field({ type: "DateTime", resolve: (i) => i.expiresAt }),
    installationId: t.exposeInt("installationId"),
    repositories: t.stringList({ nullable: true, description: "owner/name; null when the token covers every repository", resolve: (i) => i.repositories }),
    permissions: t.field({ type: "JSON", resolve: (i) => i.permissions }),
    cached: t.exposeBoolean("cached", { description: "The same token as an earlier identical request (it has over 5 minutes left)" }),
    fingerprint: t.exposeString("fingerprint"),
    policy: t.exposeString("policy", { description: "The token policy that allowed it" }),
  }),
});

const IssueGitHubTokenInput = builder.inputType("IssueGitHubTokenInput", {
  fields: (t) => ({
    app: t.string({ required: true }),
    installationId: t.int({ required: false }),
    owner: t.string({ required: false }),
    repository: t.string({ required: false, description: "owner/name" }),
    repositories: t.stringList({ required: false, description: "names under the installation's account (narrow the token)" }),
    permissions: t.field({ type: "JSON", required: false, description: 'a subset, e.g. {"contents": "read"}' }),
    minValiditySeconds: t.int({ required: false, description: "reuse a cached token only if it has this long left (token writers ask 900)" }),
  }),
});

builder.mutationField("issueGitHubToken", (t) =>
  t.withAuth({ permission: "github-token:issue" }).field({
    type: IssuedGitHubTokenRef,
    args: { input: t.arg({ type: IssueGitHubTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      issueGitHubToken(
        ctx.deps,
        ctx.actor,
        {
          app: input.app,
          installationId: input.installationId ?? undefined,
          owner: input.owner ?? undefined,
          repository: input.repository ?? undefined,
          repositories: input.repositories ?? [],
          permissions: (input.permissions ?? {}) as never,
          minValiditySeconds: input.minValiditySeconds ?? undefined,
        },
        ctx.meta,
      ),
  }),
);

const GitHubTokenRecord = builder.objectRef<IssuedTokenRow>("GitHubTokenRecord").implement({
  description: "A GitHub token Keyplane handed out: who, for what, until when. Never the token.",
  fields: (t) => ({
    id: t.exposeID("token_id"),
    app: t.exposeString("app"),
    installationId: t.exposeID("installation_id", { description: "Keyplane's installation id" }),
    githubInstallationId: t.int({ resolve: (r) => Number(r.github_installation_id) }),
    requester: t.exposeString("requester"),
    policy: t.exposeString("policy"),
    repositories: t.stringList({ nullable: true, resolve: (r) => r.repositories }),
    permissions: t.field({ type: "JSON", resolve: (r) => r.permissions }),
    fingerprint: t.exposeString("fingerprint"),
    cached: t.exposeBoolean("cached"),
    issuedAt: t.field({ type: "DateTime", resolve: (r) => r.issued_at }),
    expiresAt: t.field({ type: "DateTime", resolve: (r) => r.expires_at }),
    revokedAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.revoked_at }),
    revokeReason: t.exposeString("revoke_reason", { nullable: true }),
  }),
});

builder.mutationField("revokeGitHubToken", (t) =>
  t.withAuth({ permission: "github-token:issue" }).field({
    type: GitHubTokenRecord,
    description: "Revoked at GitHub (DELETE /installation/token) unless already expired. Admins, or the principal that received it.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => revokeGitHubToken(ctx.deps, ctx.actor, String(args.id), ctx.meta),
  }),
);

const IssuedTokenStatus = builder.enumType("IssuedTokenStatus", { values: ["active", "revoked", "expired"] as const });
const IssuedTokensFilter = builder.inputType("IssuedTokensFilter", {
  fields: (t) => ({
    app: t.string({ required: false }),
    installationId: t.id({ required: false, description: "Keyplane's installation id" }),
    requester: t.string({ required: false }),
    status: t.field({ type: IssuedTokenStatus, required: false }),
  }),
});

// Newest first, by (issued_at, id): stable while tokens are issued.
const issuedTokenCursor = timeIdCursor<IssuedTokenRow>("tok", (r) => ({ at: r.issued_at, id: r.token_id }));
const GitHubTokenConnection = connectionType({ connection: "GitHubTokenConnection", edge: "GitHubTokenEdge" }, GitHubTokenRecord, issuedTokenCursor);

builder.queryField("issuedTokens", (t) =>
  t.withAuth({ permission: "github-token:read" }).field({
    type: GitHubTokenConnection,
    description: "GitHub tokens handed out, newest first (fingerprints, never tokens)",
    args: { filter: t.arg({ type: IssuedTokensFilter, required: false }), first: t.arg.int({ required: true }), after: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => {
      const tenantId = ctx.actor.tenantId;
      const f = args.filter ?? {};
      const filter = { app: f.app, installationId: f.installationId ? String(f.installationId) : null, requester: f.requester, status: f.status };
      const page = { ...pageArgs(issuedTokenCursor, args), now: ctx.deps.now() };
      return withTenant(ctx.deps.db, tenantId, (trx) => listIssuedTokens(trx, tenantId, filter, page));
    },
  }),
);
