import { eventMetadata, type Actor, type RequestMeta } from "../auth/actor.ts";
import type {
  ChangeTenantTierCommand,
  CreateTenantCommand,
  SetLegalHoldCommand,
  SetRetentionCommand,
  SuspendTenantCommand,
  TenantCommand,
} from "../domain/tenant/decide.ts";
import type { Tier } from "../domain/tenant/events.ts";
import { NotFoundError } from "../errors.ts";
import { tenantDecider, tenantStream } from "../domain/tenant/decider.ts";
import { withTenant } from "../store/db.ts";
import type { StoredEvent } from "../store/events/types.ts";
import { findTenant, findTenantRow, type TenantRow } from "../store/queries/tenantQueries.ts";
import type { AppDeps } from "./deps.ts";
import { decideAndAppend } from "./handleCommand.ts";

/** One tenant command in the tenant's own transaction: what it recorded, and the tenant as it projected. */
async function runTenantCommand(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  tenantId: string,
  command: TenantCommand,
  request: RequestMeta,
): Promise<{ stored: StoredEvent[]; tenant: TenantRow }> {
  return withTenant(deps.db, tenantId, async (trx) => {
    const { stored } = await decideAndAppend(trx, {
      tenantId,
      ...tenantStream(tenantId),
      decider: tenantDecider,
      command,
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
    return { stored, tenant: (await findTenantRow(trx, tenantId))! };
  });
}

const idOf = (input: CreateTenantCommand["input"]) => (typeof input.id === "string" ? input.id : "");

/** A tenant's first event opens its own hash chain. Answers that event. */
export async function createTenant(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  input: CreateTenantCommand["input"],
  request: RequestMeta = {},
): Promise<StoredEvent> {
  return (await runTenantCommand(deps, actor, idOf(input), { type: "CreateTenant", input }, request)).stored[0]!;
}

/** The same, answering with the tenant as created (the createTenant mutation). */
export async function createTenantRow(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  input: CreateTenantCommand["input"],
  request: RequestMeta = {},
): Promise<TenantRow> {
  return (await runTenantCommand(deps, actor, idOf(input), { type: "CreateTenant", input }, request)).tenant;
}

/**
 * A platform operator moves a tenant to another tier (`tenant.tier_changed` in the tenant's own log).
 * Its rate limits, cost budget and agent quotas follow from the next request on, in every process:
 * the tier is read with each request's token check. Answers the event; none when already on that tier.
 */
export async function changeTenantTier(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  tenantId: string,
  input: ChangeTenantTierCommand["input"],
  request: RequestMeta = {},
): Promise<StoredEvent | undefined> {
  return (await runTenantCommand(deps, actor, tenantId, { type: "ChangeTenantTier", input }, request)).stored[0];
}

/** The same, answering with the tenant on its new tier (the changeTenantTier mutation). NOT_FOUND for no such tenant. */
export async function changeTenantTierRow(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  tenantId: string,
  input: ChangeTenantTierCommand["input"],
  request: RequestMeta = {},
): Promise<TenantRow> {
  return (await runTenantCommand(deps, actor, tenantId, { type: "ChangeTenantTier", input }, request)).tenant;
}

/**
 * A platform operator suspends a tenant (`tenant.suspended` in its log): from the commit on, none of
 * its access tokens, sessions, sign-in codes or enrollment keys is accepted, by any process (the
 * standing of its tokens is dropped from every authentication cache, and open sockets and
 * subscriptions end within one token check). Its data and its log stay; webhooks from providers are
 * still recorded. Answers the tenant; suspending a suspended tenant records nothing.
 */
export async function suspendTenant(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  tenantId: string,
  input: SuspendTenantCommand["input"],
  request: RequestMeta = {},
): Promise<TenantRow> {
  return (await runTenantCommand(deps, actor, tenantId, { type: "SuspendTenant", input }, request)).tenant;
}

/** Lifts a suspension (`tenant.resumed`): the tenant's unexpired tokens work again. Records nothing for an active tenant. */
export async function resumeTenant(deps: Pick<AppDeps, "db" | "now">, actor: Actor, tenantId: string, request: RequestMeta = {}): Promise<TenantRow> {
  return (await runTenantCommand(deps, actor, tenantId, { type: "ResumeTenant" }, request)).tenant;
}

/**
 * How long the tenant's log is kept (`tenant.retention_set`): `days`, at most what its tier allows
 * (AUDIT_RETENTION_DAYS), or null for as long as the tier allows. Retention prunes behind signed
 * checkpoints from its next run. Records nothing when unchanged.
 */
export async function setRetentionPolicy(
  deps: Pick<AppDeps, "db" | "now" | "config">,
  actor: Actor,
  tenantId: string,
  input: SetRetentionCommand["input"],
  request: RequestMeta = {},
): Promise<TenantRow> {
  const tenant = await findTenant(deps.db, tenantId);
  if (!tenant) throw new NotFoundError("tenant");
  const tierMaxDays = deps.config.audit.retentionDays[tenant.tier as Tier] ?? null;
  return (await runTenantCommand(deps, actor, tenantId, { type: "SetRetentionPolicy", input, tierMaxDays }, request)).tenant;
}

/** Stops all pruning of the tenant's log until released (`tenant.legal_hold_set`); a second hold keeps the first reason. */
export async function setLegalHold(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  tenantId: string,
  input: SetLegalHoldCommand["input"],
  request: RequestMeta = {},
): Promise<TenantRow> {
  return (await runTenantCommand(deps, actor, tenantId, { type: "SetLegalHold", input }, request)).tenant;
}

/** Lets retention prune the tenant's log again (`tenant.legal_hold_released`); records nothing when there is no hold. */
export async function releaseLegalHold(deps: Pick<AppDeps, "db" | "now">, actor: Actor, tenantId: string, request: RequestMeta = {}): Promise<TenantRow> {
  return (await runTenantCommand(deps, actor, tenantId, { type: "ReleaseLegalHold" }, request)).tenant;
}
