import type { TenantEvent, Tier } from "./events.ts";

export type TenantState =
  | { exists: false }
  | {
      exists: true;
      id: string;
      name: string;
      tier: Tier;
      status: "active" | "suspended";
      /** Days the log is kept; null: as long as the tier allows. */
      retentionDays: number | null;
      /** Why pruning is held, or null. */
      legalHold: string | null;
    };

export const initialTenantState = (): TenantState => ({ exists: false });

export function evolveTenant(state: TenantState, event: TenantEvent): TenantState {
  if (event.type === "tenant.created") {
    return { exists: true, id: event.data.tenantId, name: event.data.name, tier: event.data.tier, status: "active", retentionDays: null, legalHold: null };
  }
  if (!state.exists) return state;
  switch (event.type) {
    case "tenant.tier_changed":
      return { ...state, tier: event.data.to };
    case "tenant.suspended":
      return { ...state, status: "suspended" };
    case "tenant.resumed":
      return { ...state, status: "active" };
    case "tenant.retention_set":
      return { ...state, retentionDays: event.data.days };
    case "tenant.legal_hold_set":
      return { ...state, legalHold: event.data.reason };
    case "tenant.legal_hold_released":
      return { ...state, legalHold: null };
  }
}
