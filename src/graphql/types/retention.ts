import type { AuthenticatedContext } from "../context.ts";
import { releaseLegalHold, setLegalHold, setRetentionPolicy } from "../../app/tenants.ts";
import type { Tier } from "../../domain/tenant/events.ts";
import { effectiveRetentionDays } from "../../domain/tenant/retention.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { BadInputError, NotFoundError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import type { TenantRow } from "../../store/queries/tenantQueries.ts";
import { readPrunedPrefix, type PrunedPrefix } from "../../store/retention/prunedPrefix.ts";
import { builder } from "../builder.ts";
import { Tenant } from "./tenant.ts";

interface RetentionView {
  row: TenantRow;
  tierMaxDays: number | null;
  archived: boolean;
  /** Where retention pruned the tenant's log: read once, when a field asks. */
  pruned?: Promise<PrunedPrefix | null>;
}

const LegalHold = builder.objectRef<{ reason: string; since: Date | string }>("LegalHold").implement({
  description: "Nothing of the tenant's log is pruned while it holds",
  fields: (t) => ({
    reason: t.exposeString("reason", { description: "As given when it was placed (recorded in the tenant's log, shown to whoever reads the tenant)" }),
    since: t.field({ type: "DateTime", resolve: (h) => h.since }),
  }),
});

const TenantRetention = builder.objectRef<RetentionView>("TenantRetention").implement({
  description: "How long the tenant's audit log is kept, and where it starts after retention pruned it",
  fields: (t) => ({
    days: t.int({ nullable: true, description: "The period the tenant chose; null: as long as its tier allows", resolve: (v) => v.row.retention_days }),
    tierMaxDays: t.int({ nullable: true, description: "The most its tier allows (AUDIT_RETENTION_DAYS); null: unlimited", resolve: (v) => v.tierMaxDays }),
    effectiveDays: t.int({
      nullable: true,
      description: "What retention applies: the smaller of the two; null: nothing is ever pruned",
      resolve: (v) => effectiveRetentionDays(v.row.retention_days, v.tierMaxDays),
    }),
    legalHold: t.field({
      type: LegalHold,
      nullable: true,
      resolve: (v) => (v.row.legal_hold_reason === null ? null : { reason: v.row.legal_hold_reason, since: v.row.legal_hold_since! }),
    }),
    archived: t.boolean({
      description: "Whether each pruned range is first written as a verifiable export file (AUDIT_ARCHIVE_DIR)",
      resolve: (v) => v.archived,
    }),
    firstAvailableSequence: t.int({
      description: "The first sequence the log holds: 1, or the one after the signed checkpoint retention pruned up to",
      resolve: async (v, _args, ctx) => 1 + ((await prunedOf(ctx, v))?.throughSequence ?? 0),
    }),
    prunedBefore: t.field({
      type: "DateTime",
      nullable: true,
      description: "When the last pruned event occurred: nothing older is left; null when nothing was pruned",
      resolve: async (v, _args, ctx) => (await prunedOf(ctx, v))?.lastOccurredAt ?? null,
    }),
  }),
});

const prunedOf = (ctx: { deps: AuthenticatedContext["deps"] }, v: RetentionView) =>
  (v.pruned ??= withTenant(ctx.deps.db, v.row.tenant_id, (trx) => readPrunedPrefix(trx, v.row.tenant_id)));

builder.objectField(Tenant, "retention", (t) =>
  t.field({
    type: TenantRetention,
    resolve: (row, _args, ctx) => ({
      row,
      tierMaxDays: ctx.deps.config.audit.retentionDays[row.tier as Tier] ?? null,
      archived: !!ctx.deps.config.audit.archiveDir,
    }),
  }),
);

/**
 * The tenant a retention mutation acts on: the caller's own, or (platform operators, who must name
 * it) any. Naming another tenant without being one is NOT_FOUND, recorded as a cross-tenant refusal.
 */
async function targetTenant(ctx: AuthenticatedContext, id: string | number | null | undefined, action: string): Promise<string> {
  const actor = ctx.actor;
  const operator = actor.permissions.has("tenant:manage");
  if (id === null || id === undefined) {
    if (operator) throw new BadInputError("tenantId: platform operators name the tenant", "tenantId");
    return actor.tenantId;
  }
  if (String(id) === actor.tenantId || operator) return String(id);
  await ctx.deps.security.accessDenied({
    tenantId: actor.tenantId,
    actor,
    reason: "cross-tenant",
    resource: "tenant",
    action,
    details: { requested: truncateWellFormed(String(id), 100) },
    request: ctx.meta,
  });
  throw new NotFoundError("tenant");
}

const TENANT_ID_ARG = { required: false, description: "Platform operators: the tenant. Others: their own (the default)" } as const;

builder.mutationField("setRetentionPolicy", (t) =>
  t.withAuth({ permission: "retention:manage" }).field({
    type: Tenant,
    description:
      "How long the tenant's audit log is kept: events older than this are pruned, behind a signed checkpoint (and archived first where AUDIT_ARCHIVE_DIR is set). At most what the tier allows; null: as long as the tier allows",
    args: {
      days: t.arg.int({ required: false, description: "1 or more, at most the tier's tierMaxDays; null or left out: the tier's" }),
      tenantId: t.arg.id(TENANT_ID_ARG),
    },
    resolve: async (_root, args, ctx) =>
      setRetentionPolicy(ctx.deps, ctx.actor, await targetTenant(ctx, args.tenantId, "retention:manage"), { days: args.days ?? null }, ctx.meta),
  }),
);

builder.mutationField("setLegalHold", (t) =>
  t.withAuth({ permission: "retention:manage" }).field({
    type: Tenant,
    description: "Stops all pruning of the tenant's log until released (a second hold keeps the first reason)",
    args: {
      reason: t.arg.string({ required: true, description: "Why (at most 500 characters): recorded in the tenant's log, shown to whoever reads the tenant" }),
      tenantId: t.arg.id(TENANT_ID_ARG),
    },
    resolve: async (_root, args, ctx) =>
      setLegalHold(ctx.deps, ctx.actor, await targetTenant(ctx, args.tenantId, "retention:manage"), { reason: args.reason }, ctx.meta),
  }),
);

builder.mutationField("releaseLegalHold", (t) =>
  t.withAuth({ permission: "retention:manage" }).field({
    type: Tenant,
    description: "Lets retention prune the tenant's log again from its next run",
    args: { tenantId: t.arg.id(TENANT_ID_ARG) },
    resolve: async (_root, args, ctx) => releaseLegalHold(ctx.deps, ctx.actor, await targetTenant(ctx, args.tenantId, "retention:manage"), ctx.meta),
  }),
);
