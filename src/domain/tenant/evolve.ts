import type { TenantEvent, Tier } from "./events.ts";

export type TenantState = { exists: false } | { exists: true; id: string; name: string; tier: Tier; status: "active" | "suspended" };

export const initialTenantState = (): TenantState => ({ exists: false });

export function evolveTenant(state: TenantState, event: TenantEvent): TenantState {
  switch (event.type) {
    case "tenant.created":
      return { exists: true, id: event.data.tenantId, name: event.data.name, tier: event.data.tier, status: "active" };
    case "tenant.tier_changed":
      return state.exists ? { ...state, tier: event.data.to } : state;
    case "tenant.suspended":
      return state.exists ? { ...state, status: "suspended" } : state;
    case "tenant.resumed":
      return state.exists ? { ...state, status: "active" } : state;
  }
}
