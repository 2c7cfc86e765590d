import type { Selectable } from "kysely";
import { issueGitHubToken, type IssuedGitHubToken } from "../../app/githubTokens/issueGitHubToken.ts";
import { revokeGitHubToken } from "../../app/githubTokens/revokeGitHubToken.ts";
import { deleteTokenPolicy, listTokenPolicies, setTokenPolicy } from "../../app/githubTokens/tokenPolicies.ts";
import { BadInputError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import type { GitHubTokensTable, TokenPoliciesTable } from "../../store/schema.ts";
import { builder } from "../builder.ts";
import { checkPageSize, PageInfo } from "../pagination.ts";

type PolicyRow = Selectable<TokenPoliciesTable>;
type TokenRow = Selectable<GitHubTokensTable>;

const TokenPolicy = builder.objectRef<PolicyRow>("TokenPolicy").implement({
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
  t.field({
    type: [TokenPolicy],
    args: { app: t.arg.string({ required: false }) },
    authScopes: { permission: "token-policy:read" },
    resolve: (_root, args, ctx) => listTokenPolicies(ctx.deps, ctx.actor!.tenantId, args.app),
  }),
);

builder.mutationField("setTokenPolicy", (t) =>
  t.field({
    type: TokenPolicy,
    args: { input: t.arg({ type: TokenPolicyInput, required: true }) },
    authScopes: { permission: "token-policy:manage" },
    resolve: (_root, { input }, ctx) =>
      setTokenPolicy(
        ctx.deps,
        ctx.actor!,
        { name: input.name, app: input.app, roles: (input.roles ?? []) as never[], subjects: input.subjects ?? [], agentTags: input.agentTags ?? [], repositories: input.repositories, permissions: input.permissions as never },
        ctx.meta,
      ),
  }),
);

builder.mutationField("deleteTokenPolicy", (t) =>
  t.field({
    type: "Boolean",
    args: { name: t.arg.string({ required: true }) },
    authScopes: { permission: "token-policy:manage" },
    resolve: (_root, args, ctx) => deleteTokenPolicy(ctx.deps, ctx.actor!, args.name, ctx.meta),
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
  t.field({
    type: IssuedGitHubTokenRef,
    args: { input: t.arg({ type: IssueGitHubTokenInput, required: true }) },
    authScopes: { permission: "github-token:issue" },
    resolve: (_root, { input }, ctx) =>
      issueGitHubToken(
        ctx.deps,
        ctx.actor!,
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

const GitHubTokenRecord = builder.objectRef<TokenRow>("GitHubTokenRecord").implement({
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
  t.field({
    type: GitHubTokenRecord,
    description: "Revoked at GitHub (DELETE /installation/token) unless already expired. Admins, or the principal that received it.",
    args: { id: t.arg.id({ required: true }) },
    authScopes: { permission: "github-token:issue" },
    resolve: (_root, args, ctx) => revokeGitHubToken(ctx.deps, ctx.actor!, String(args.id), ctx.meta),
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

const encodeCursor = (r: TokenRow) => Buffer.from(`tok:${new Date(r.issued_at).getTime()}:${r.token_id}`).toString("base64url");
function decodeCursor(cursor: string | null | undefined) {
  if (cursor === null || cursor === undefined) return undefined;
  const match = /^tok:(\d{1,15}):([0-9a-f-]{36})$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match) throw new BadInputError("after: not a cursor of this list", "after");
  return { issuedAt: new Date(Number(match[1])), id: match[2]! };
}

const GitHubTokenEdge = builder.objectRef<TokenRow>("GitHubTokenEdge").implement({
  fields: (t) => ({ cursor: t.string({ resolve: encodeCursor }), node: t.field({ type: GitHubTokenRecord, resolve: (r) => r }) }),
});
const GitHubTokenConnection = builder.objectRef<{ rows: TokenRow[]; hasNextPage: boolean }>("GitHubTokenConnection").implement({
  fields: (t) => ({
    edges: t.field({ type: [GitHubTokenEdge], resolve: (p) => p.rows }),
    nodes: t.field({ type: [GitHubTokenRecord], resolve: (p) => p.rows }),
    pageInfo: t.field({ type: PageInfo, resolve: (p) => ({ hasNextPage: p.hasNextPage, endCursor: p.rows.length ? encodeCursor(p.rows[p.rows.length - 1]!) : null }) }),
  }),
});

builder.queryField("issuedTokens", (t) =>
  t.field({
    type: GitHubTokenConnection,
    description: "GitHub tokens handed out, newest first (fingerprints, never tokens)",
    args: { filter: t.arg({ type: IssuedTokensFilter, required: false }), first: t.arg.int({ required: true }), after: t.arg.string({ required: false }) },
    authScopes: { permission: "github-token:read" },
    resolve: (_root, args, ctx) => {
      const tenantId = ctx.actor!.tenantId;
      const first = checkPageSize(args.first);
      const after = decodeCursor(args.after);
      const f = args.filter ?? {};
      const now = ctx.deps.now();
      return withTenant(ctx.deps.db, tenantId, async (trx) => {
        let q = trx.selectFrom("github_tokens").selectAll().where("tenant_id", "=", tenantId);
        if (f.app) q = q.where("app", "=", f.app);
        if (f.installationId) q = q.where("installation_id", "=", String(f.installationId));
        if (f.requester) q = q.where("requester", "=", f.requester);
        if (f.status === "revoked") q = q.where("revoked_at", "is not", null);
        if (f.status === "active") q = q.where("revoked_at", "is", null).where("expires_at", ">", now);
        if (f.status === "expired") q = q.where("revoked_at", "is", null).where("expires_at", "<=", now);
        if (after) q = q.where((eb) => eb.or([eb("issued_at", "<", after.issuedAt), eb.and([eb("issued_at", "=", after.issuedAt), eb("token_id", "<", after.id)])]));
        const rows = await q.orderBy("issued_at", "desc").orderBy("token_id", "desc").limit(first + 1).execute();
        return { rows: rows.slice(0, first), hasNextPage: rows.length > first };
      });
    },
  }),
);
