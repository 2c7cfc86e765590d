import { changeTenantTierRow, createTenantRow, resumeTenant, suspendTenant } from "../../app/tenants.ts";
import { tenantUsage, type TenantUsage } from "../../app/tenantUsage.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { NotFoundError } from "../../errors.ts";
import { findTenant, listAllTenants, type TenantRow } from "../../store/queries/tenantQueries.ts";
import { builder } from "../builder.ts";

const Tier = builder.enumType("Tier", { values: ["free", "pro", "enterprise"] as const });

export const Tenant = builder.objectRef<TenantRow>("Tenant").implement({
  fields: (t) => ({
    id: t.exposeID("tenant_id"),
    name: t.exposeString("name"),
    tier: t.field({ type: Tier, resolve: (row) => row.tier as "free" | "pro" | "enterprise" }),
    status: t.exposeString("status", { description: "active, or suspended by a platform operator (its tokens are refused with TENANT_SUSPENDED)" }),
    suspendedAt: t.field({ type: "DateTime", nullable: true, resolve: (row) => row.suspended_at }),
    suspensionReason: t.exposeString("suspension_reason", { nullable: true, description: "Why, as the platform operator gave it" }),
    version: t.exposeInt("version"),
    createdAt: t.field({ type: "DateTime", resolve: (row) => row.created_at }),
    updatedAt: t.field({ type: "DateTime", resolve: (row) => row.updated_at }),
  }),
});

builder.queryField("tenant", (t) =>
  t.withAuth({ permission: "tenant:read" }).field({
    type: Tenant,
    description: "The caller's tenant. Naming any other tenant answers NOT_FOUND.",
    args: { id: t.arg.id({ required: false }) },
    resolve: async (_root, args, ctx) => {
      const actor = ctx.actor;
      if (args.id !== null && args.id !== undefined && String(args.id) !== actor.tenantId) {
        await ctx.deps.security.accessDenied({
          tenantId: actor.tenantId,
          actor,
          reason: "cross-tenant",
          resource: "tenant",
          action: "tenant:read",
          details: { requested: truncateWellFormed(String(args.id), 100) },
          request: ctx.meta,
        });
        throw new NotFoundError("tenant");
      }
      const row = await findTenant(ctx.deps.db, actor.tenantId);
      if (!row) throw new NotFoundError("tenant");
      return row;
    },
  }),
);

const WindowUsage = builder.objectRef<{ used: number; limit: number | null; windowSeconds: number; resetSeconds?: number }>("WindowUsage").implement({
  description: "How much of a limit a window has used",
  fields: (t) => ({
    used: t.exposeInt("used"),
    limit: t.exposeInt("limit", { nullable: true, description: "null: unlimited on this tier" }),
    windowSeconds: t.exposeInt("windowSeconds"),
    resetSeconds: t.int({ nullable: true, description: "Seconds until the window ends (fixed windows only)", resolve: (u) => u.resetSeconds ?? null }),
  }),
});

const TenantUsageRef = builder.objectRef<TenantUsage>("TenantUsage").implement({
  description: "What the caller's tenant has used of what its tier allows",
  fields: (t) => ({
    tier: t.field({ type: Tier, resolve: (u) => u.tier }),
    requestLimitsEnforced: t.exposeBoolean("requestLimitsEnforced", {
      description: "False where this Keyplane counts no requests (RATE_LIMITS off): requests and cost then read 0",
    }),
    requests: t.field({ type: WindowUsage, description: "API requests this minute", resolve: (u) => u.requests }),
    cost: t.field({ type: WindowUsage, description: "Query cost this minute", resolve: (u) => u.cost }),
    agentCreations: t.field({ type: WindowUsage, description: "Agents created in the last 24 hours", resolve: (u) => u.agentCreations }),
    agentUpdates: t.field({ type: WindowUsage, description: "Agent updates in the last hour", resolve: (u) => u.agentUpdates }),
  }),
});

builder.queryField("tenantUsage", (t) =>
  t.withAuth({ permission: "tenant:read" }).field({
    type: TenantUsageRef,
    description: "The caller's tenant: requests and query cost this minute, agent creations today and updates this hour, against its tier's limits",
    resolve: (_root, _args, ctx) => tenantUsage(ctx.deps, ctx.actor),
  }),
);

builder.queryField("tenants", (t) =>
  t.field({
    type: [Tenant],
    description: "Every tenant (platform operators only)",
    authScopes: { permission: "tenant:list" },
    resolve: (_root, _args, ctx) => listAllTenants(ctx.deps.db),
  }),
);

const CreateTenantInput = builder.inputType("CreateTenantInput", {
  fields: (t) => ({
    id: t.string({ required: true, description: "slug: a-z, 0-9 and '-'" }),
    name: t.string({ required: true }),
    tier: t.field({ type: Tier, required: false }),
  }),
});

builder.mutationField("createTenant", (t) =>
  t.withAuth({ permission: "tenant:create" }).field({
    type: Tenant,
    args: { input: t.arg({ type: CreateTenantInput, required: true }) },
    resolve: (_root, { input }, ctx) => createTenantRow(ctx.deps, ctx.actor, { id: input.id, name: input.name, tier: input.tier ?? undefined }, ctx.meta),
  }),
);

builder.mutationField("changeTenantTier", (t) =>
  t.withAuth({ permission: "tenant:manage" }).field({
    type: Tenant,
    description: "Platform operators: move a tenant to another tier. Its rate limits, cost budget and agent quotas apply from its next request.",
    args: { id: t.arg.id({ required: true }), tier: t.arg({ type: Tier, required: true }) },
    resolve: (_root, args, ctx) => changeTenantTierRow(ctx.deps, ctx.actor, String(args.id), { tier: args.tier }, ctx.meta),
  }),
);

builder.mutationField("suspendTenant", (t) =>
  t.withAuth({ permission: "tenant:manage" }).field({
    type: Tenant,
    description:
      "Platform operators: refuse every token, session, sign-in code and enrollment key of the tenant (TENANT_SUSPENDED) until it is resumed; open connections end within seconds. Its data and log stay.",
    args: {
      id: t.arg.id({ required: true }),
      reason: t.arg.string({ required: true, description: "Why (at most 500 characters): recorded in the tenant's log and shown to platform operators" }),
    },
    resolve: (_root, args, ctx) => suspendTenant(ctx.deps, ctx.actor, String(args.id), { reason: args.reason }, ctx.meta),
  }),
);

builder.mutationField("resumeTenant", (t) =>
  t.withAuth({ permission: "tenant:manage" }).field({
    type: Tenant,
    description: "Platform operators: lift a suspension; the tenant's unexpired tokens work again",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => resumeTenant(ctx.deps, ctx.actor, String(args.id), ctx.meta),
  }),
);
