import { installationCredentials, loadInstallation, type HandedOutCredentials } from "../../app/installations/installationCredentials.ts";
import { resumeInstallation, revokeInstallation, suspendInstallation } from "../../app/installations/manageInstallation.ts";
import { startInstallation, type StartedInstallation } from "../../app/installations/startInstallation.ts";
import { withTenant } from "../../store/db.ts";
import { listInstallations, type InstallationRow } from "../../store/queries/installationQueries.ts";
import { builder } from "../builder.ts";
import { connectionType, pageArgs, timeIdCursor } from "../pagination.ts";

const Platform = builder.enumType("Platform", { values: ["github", "slack", "jira"] as const });
const InstallationStatus = builder.enumType("InstallationStatus", {
  values: { active: {}, suspended: {}, needs_reauth: { description: "The provider refused the refresh: install again to re-authorize" }, revoked: {} } as const,
});

const InstallationAccount = builder.objectRef<InstallationRow>("InstallationAccount").implement({
  description: "The GitHub account, Slack workspace or Atlassian site the installation is for",
  fields: (t) => ({
    id: t.exposeString("account_id"),
    login: t.exposeString("account_login"),
    type: t.exposeString("account_type"),
    url: t.exposeString("account_url", { nullable: true }),
  }),
});

const RefreshHealth = builder.objectRef<InstallationRow>("RefreshHealth").implement({
  description: "How refreshing this installation's rotating credentials goes",
  fields: (t) => ({
    failures: t.exposeInt("refresh_failures", { description: "Failed attempts since the last success" }),
    lastError: t.exposeString("last_refresh_error", { nullable: true, description: "The provider's error code" }),
    nextAttemptAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.next_refresh_at }),
    lastRefreshedAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.last_refreshed_at }),
  }),
});

export const Installation = builder.objectRef<InstallationRow>("Installation").implement({
  description: "A tenant's installation of GitHub, Slack or Jira. Never carries a secret.",
  fields: (t) => ({
    id: t.exposeID("installation_id"),
    platform: t.field({ type: Platform, resolve: (r) => r.platform }),
    status: t.field({ type: InstallationStatus, resolve: (r) => r.status }),
    externalId: t.exposeString("external_id", { description: "GitHub installation id, Slack team id or Atlassian cloud id" }),
    app: t.exposeString("app", { nullable: true, description: "GitHub: the named app installed" }),
    account: t.field({ type: InstallationAccount, resolve: (r) => r }),
    permissions: t.field({ type: "JSON", description: "GitHub: permission -> access level", resolve: (r) => r.permissions }),
    scopes: t.stringList({ resolve: (r) => r.scopes }),
    repositorySelection: t.exposeString("repository_selection", { nullable: true }),
    repositories: t.stringList({
      nullable: true,
      description: "GitHub: owner/name of the repositories the installation covers, as webhooks reported them",
      resolve: (r) => r.repositories,
    }),
    suspendedByTenant: t.exposeBoolean("suspended_by_tenant"),
    suspendedByProvider: t.exposeBoolean("suspended_by_provider"),
    credentialFingerprint: t.exposeString("credential_fingerprint", { nullable: true, description: "SHA-256 prefix of the stored access token" }),
    credentialsExpiresAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.credentials_expires_at }),
    refresh: t.field({ type: RefreshHealth, resolve: (r) => r }),
    lastCredentialsReadAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.last_credentials_read_at }),
    details: t.field({ type: "JSON", nullable: true, resolve: (r) => r.details }),
    version: t.exposeInt("version"),
    createdBy: t.exposeString("created_by"),
    createdAt: t.field({ type: "DateTime", resolve: (r) => r.created_at }),
    updatedAt: t.field({ type: "DateTime", resolve: (r) => r.updated_at }),
    revokedAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.revoked_at }),
  }),
});

// Keyset cursor over (created_at, id): stable while installations are added.
const installationCursor = timeIdCursor<InstallationRow>("inst", (r) => ({ at: r.created_at, id: r.installation_id }));
const InstallationConnection = connectionType({ connection: "InstallationConnection", edge: "InstallationEdge" }, Installation, installationCursor);

builder.queryField("installations", (t) =>
  t.withAuth({ permission: "installation:read" }).field({
    type: InstallationConnection,
    description: "The caller's tenant's installations, newest first",
    args: {
      platform: t.arg({ type: Platform, required: false }),
      status: t.arg({ type: InstallationStatus, required: false }),
      first: t.arg.int({ required: true }),
      after: t.arg.string({ required: false }),
    },
    resolve: (_root, args, ctx) => {
      const tenantId = ctx.actor.tenantId;
      const page = pageArgs(installationCursor, args);
      return withTenant(ctx.deps.db, tenantId, (trx) => listInstallations(trx, tenantId, { platform: args.platform, status: args.status }, page));
    },
  }),
);

builder.queryField("installation", (t) =>
  t.withAuth({ permission: "installation:read" }).field({
    type: Installation,
    description: "One installation of the caller's tenant (NOT_FOUND for any other id)",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => loadInstallation(ctx.deps, ctx.actor, String(args.id)),
  }),
);

const InstallationCredentials = builder.objectRef<HandedOutCredentials>("InstallationCredentials").implement({
  description: "A usable access token. Each read is recorded as a credentials.read event with the token's fingerprint.",
  fields: (t) => ({
    installationId: t.exposeID("installationId"),
    platform: t.field({ type: Platform, resolve: (c) => c.platform }),
    externalId: t.exposeString("externalId"),
    accessToken: t.exposeString("accessToken"),
    expiresAt: t.field({ type: "DateTime", nullable: true, resolve: (c) => c.expiresAt ?? null }),
  }),
});

builder.queryField("installationCredentials", (t) =>
  t.withAuth({ permission: "installation:credentials" }).field({
    type: InstallationCredentials,
    description: "For services: the installation's access token, refreshed first when near expiry. Audited.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => installationCredentials(ctx.deps, ctx.actor, String(args.id), ctx.meta),
  }),
);

const InstallationStart = builder.objectRef<StartedInstallation>("InstallationStart").implement({
  fields: (t) => ({
    authorizationUrl: t.exposeString("authorizationUrl", { description: "Send the browser here; it comes back to /oauth/callback/<platform>" }),
    requestId: t.exposeID("requestId"),
    expiresAt: t.field({ type: "DateTime", resolve: (s) => s.expiresAt }),
  }),
});

builder.mutationField("startInstallation", (t) =>
  t.withAuth({ permission: "installation:create" }).field({
    type: InstallationStart,
    description: "For single-page apps: the provider's authorization URL with a fresh single-use state",
    args: {
      platform: t.arg({ type: Platform, required: true }),
      app: t.arg.string({ required: false, description: "GitHub: which configured app (default: the default app)" }),
    },
    resolve: (_root, args, ctx) => startInstallation(ctx.deps, ctx.actor, args.platform, ctx.meta, args.app),
  }),
);

builder.mutationField("suspendInstallation", (t) =>
  t.withAuth({ permission: "installation:manage" }).field({
    type: Installation,
    description: "Stop handing out the installation's credentials until resumed",
    args: { id: t.arg.id({ required: true }), reason: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => suspendInstallation(ctx.deps, ctx.actor, { id: String(args.id), reason: args.reason }, ctx.meta),
  }),
);

builder.mutationField("resumeInstallation", (t) =>
  t.withAuth({ permission: "installation:manage" }).field({
    type: Installation,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => resumeInstallation(ctx.deps, ctx.actor, { id: String(args.id) }, ctx.meta),
  }),
);

builder.mutationField("revokeInstallation", (t) =>
  t.withAuth({ permission: "installation:manage" }).field({
    type: Installation,
    description: "Revoke at the provider where possible (GitHub: uninstall, Slack: auth.revoke), forget the credentials, record it",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => revokeInstallation(ctx.deps, ctx.actor, { id: String(args.id) }, ctx.meta),
  }),
);
