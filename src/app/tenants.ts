import { eventMetadata, type Actor, type RequestMeta } from "../auth/actor.ts";
import type { ChangeTenantTierCommand, CreateTenantCommand, SuspendTenantCommand, TenantCommand } from "../domain/tenant/decide.ts";
import { tenantDecider, tenantStream } from "../domain/tenant/decider.ts";
import { withTenant } from "../store/db.ts";
import type { StoredEvent } from "../store/events/types.ts";
import { findTenantRow, type TenantRow } from "../store/queries/tenantQueries.ts";
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
