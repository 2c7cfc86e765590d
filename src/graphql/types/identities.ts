import { identityToken, type HandedOutIdentityToken } from "../../app/identities/identityTokens.ts";
import { startIdentityLink, type StartedIdentityLink } from "../../app/identities/linkIdentity.ts";
import { unlinkIdentity } from "../../app/identities/unlinkIdentity.ts";
import { can } from "../../auth/actor.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { withTenant } from "../../store/db.ts";
import { listIdentities, type LinkedIdentityRow } from "../../store/queries/identityQueries.ts";
import { retainedStart } from "../../app/retention/retainedLog.ts";
import { builder } from "../builder.ts";
import { decodeCursor } from "../pagination.ts";
import { AuditEvent } from "./auditLog.ts";

const IdentityStatus = builder.enumType("IdentityStatus", {
  values: {
    linked: { description: "Usable: its user token is refreshed as needed" },
    needs_relink: { description: "GitHub refused its refresh token (revoked at GitHub, or expired): the principal must link again" },
  } as const,
});

const IdentityRefreshHealth = builder.objectRef<LinkedIdentityRow>("IdentityRefreshHealth").implement({
  description: "How refreshing the identity's user token goes",
  fields: (t) => ({
    failures: t.exposeInt("refresh_failures", { description: "Failed attempts since the last success" }),
    lastError: t.exposeString("last_refresh_error", { nullable: true, description: "GitHub's error code" }),
    nextAttemptAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.next_refresh_at }),
    lastRefreshedAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.refreshed_at }),
  }),
});

export const LinkedIdentity = builder.objectRef<LinkedIdentityRow>("LinkedIdentity").implement({
  description: "A principal's own GitHub account, linked through the GitHub App's user authorization flow (never its tokens)",
  fields: (t) => ({
    id: t.exposeID("identity_id"),
    provider: t.exposeString("provider"),
    app: t.exposeString("app", { description: "The GitHub App it was authorized for" }),
    subject: t.exposeString("subject", { description: "The principal it belongs to (a user, a service or agent:<id>)" }),
    subjectKind: t.exposeString("subject_kind"),
    login: t.exposeString("login", { description: "The GitHub account's login" }),
    accountId: t.exposeString("account_id", { description: "The GitHub account's id" }),
    status: t.field({ type: IdentityStatus, resolve: (r) => r.status }),
    accessExpiresAt: t.field({
      type: "DateTime",
      nullable: true,
      description: "When the current user token ends (8 hours after it was issued)",
      resolve: (r) => r.access_expires_at,
    }),
    refreshExpiresAt: t.field({
      type: "DateTime",
      nullable: true,
      description: "When the refresh token ends (six months, renewed by every refresh); the principal is told a day before",
      resolve: (r) => r.refresh_expires_at,
    }),
    expiringNoticeAt: t.field({
      type: "DateTime",
      nullable: true,
      description: "When the principal was told to link again (identity.expiring)",
      resolve: (r) => r.expiring_notice_at,
    }),
    refresh: t.field({ type: IdentityRefreshHealth, resolve: (r) => r }),
    linkedAt: t.field({ type: "DateTime", resolve: (r) => r.linked_at }),
  }),
});

const IdentityLinkStart = builder.objectRef<StartedIdentityLink>("IdentityLinkStart").implement({
  fields: (t) => ({
    authorizationUrl: t.exposeString("authorizationUrl", {
      description: "Open it in a browser signed in to the GitHub account to link; GitHub comes back to /oauth/link/github/callback",
    }),
    requestId: t.exposeID("requestId"),
    expiresAt: t.field({ type: "DateTime", resolve: (s) => s.expiresAt }),
  }),
});

const IdentityToken = builder.objectRef<HandedOutIdentityToken>("IdentityToken").implement({
  description: "The user-to-server token of the caller's own linked identity: it acts on GitHub as that account",
  fields: (t) => ({
    identityId: t.exposeID("identityId"),
    app: t.exposeString("app"),
    login: t.exposeString("login"),
    token: t.exposeString("token"),
    expiresAt: t.field({ type: "DateTime", nullable: true, resolve: (h) => h.expiresAt ?? null }),
  }),
});

/** Ids are UUIDs: anything longer is no identity's. */
const idOf = (id: string | number) => truncateWellFormed(String(id), 64);
const appOf = (app: string | null | undefined) => (app == null ? undefined : truncateWellFormed(app, 64));

builder.queryField("linkedIdentities", (t) =>
  t.withAuth({ anyPermission: ["identity:link", "identity:manage"] }).field({
    type: [LinkedIdentity],
    description: "Linked GitHub identities, oldest first: the caller's own; with identity:manage (admins) every one of the tenant's, or those of `subject`",
    args: { subject: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => {
      const manager = can(ctx.actor, "identity:manage");
      const subject = manager ? (args.subject == null ? undefined : truncateWellFormed(args.subject, 300)) : ctx.actor.subject;
      return withTenant(ctx.deps.db, ctx.actor.tenantId, (trx) => listIdentities(trx, ctx.actor.tenantId, subject));
    },
  }),
);

builder.queryField("identityToken", (t) =>
  t.withAuth({ permission: "identity:token" }).field({
    type: IdentityToken,
    description:
      "For services and agents: the user token of the caller's own linked identity (of `app`, else the default app), refreshed first when near expiry. Audited (identity.token_issued with its fingerprint).",
    args: { app: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => identityToken(ctx.deps, ctx.actor, appOf(args.app), ctx.meta),
  }),
);

builder.mutationField("startIdentityLink", (t) =>
  t.withAuth({ permission: "identity:link" }).field({
    type: IdentityLinkStart,
    description:
      "Begins linking the caller's own GitHub account (user authorization of `app`, else the default app; state and PKCE). Linking again replaces the account.",
    args: { app: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => startIdentityLink(ctx.deps, ctx.actor, appOf(args.app), ctx.meta),
  }),
);

builder.mutationField("unlinkIdentity", (t) =>
  t.withAuth({ anyPermission: ["identity:link", "identity:manage"] }).field({
    type: LinkedIdentity,
    description:
      "Unlinks an identity (the caller's own; any of the tenant's with identity:manage): GitHub revokes the user's grant of the app, then its tokens are deleted",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => unlinkIdentity(ctx.deps, ctx.actor, idOf(args.id), ctx.meta),
  }),
);

const IDENTITY_EVENT_TYPES = [
  "identity.linked",
  "identity.refreshed",
  "identity.refresh_failed",
  "identity.expiring",
  "identity.token_issued",
  "identity.unlinked",
];

builder.subscriptionField("identityEvents", (t) =>
  t.withAuth({ permission: "identity:link" }).field({
    type: AuditEvent,
    description:
      "The events of the caller's own linked identities as they commit (identity.linked, refreshed, refresh_failed, expiring, token_issued, unlinked): identity.expiring says to link again. Without `after` (a cursor from this subscription or tenantEvents), from now on.",
    args: { after: t.arg.string({ required: false }) },
    subscribe: async (_root, args, ctx) => {
      const after = decodeCursor("seq", args.after);
      const tenantId = ctx.actor.tenantId;
      if (after !== undefined) await withTenant(ctx.deps.db, tenantId, (trx) => retainedStart(trx, tenantId, { what: "after", sequence: after + 1 }));
      const own = (event: { data: Record<string, unknown> }) => event.data.subject === ctx.actor.subject;
      return ctx.deps.events.watch(tenantId, { after: after ?? "latest", types: IDENTITY_EVENT_TYPES, where: own });
    },
    resolve: (event) => event,
  }),
);
