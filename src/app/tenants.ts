import { eventMetadata, type Actor, type RequestMeta } from "../auth/actor.ts";
import { decideTenant, type ChangeTenantTierCommand, type CreateTenantCommand } from "../domain/tenant/decide.ts";
import { evolveTenant, initialTenantState } from "../domain/tenant/evolve.ts";
import type { AppDeps } from "./deps.ts";
import { handleCommand } from "./handleCommand.ts";

export const tenantDecider = { initialState: initialTenantState, evolve: evolveTenant, decide: decideTenant };

/** A tenant's first event opens its own hash chain. */
export async function createTenant(deps: Pick<AppDeps, "db">, actor: Actor, input: CreateTenantCommand["input"], request: RequestMeta = {}) {
  const id = typeof input.id === "string" ? input.id : "";
  const { stored } = await handleCommand(deps.db, {
    tenantId: id,
    streamType: "tenant",
    streamId: id,
    decider: tenantDecider,
    command: { type: "CreateTenant", input },
    metadata: eventMetadata(actor, request),
  });
  return stored[0]!;
}

/**
 * A platform operator moves a tenant to another tier (`tenant.tier_changed` in the tenant's own log).
 * Its rate limits, cost budget and agent quotas follow from the next request on, in every process:
 * the tier is read with each request's token check.
 */
export async function changeTenantTier(deps: Pick<AppDeps, "db">, actor: Actor, tenantId: string, input: ChangeTenantTierCommand["input"], request: RequestMeta = {}) {
  const { stored } = await handleCommand(deps.db, {
    tenantId,
    streamType: "tenant",
    streamId: tenantId,
    decider: tenantDecider,
    command: { type: "ChangeTenantTier", input },
    metadata: eventMetadata(actor, request),
  });
  return stored[0];
}
