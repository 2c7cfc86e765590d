import type { Decider, StreamName } from "../decider.ts";
import { decideTenant, type TenantCommand } from "./decide.ts";
import type { TenantEvent } from "./events.ts";
import { evolveTenant, initialTenantState, type TenantState } from "./evolve.ts";

export const tenantDecider: Decider<TenantState, TenantCommand, TenantEvent> = { initialState: initialTenantState, evolve: evolveTenant, decide: decideTenant };

/** A tenant's own stream is named by its id, in its own log: its first event opens the hash chain. */
export const tenantStream = (tenantId: string): StreamName => ({ streamType: "tenant", streamId: tenantId });
