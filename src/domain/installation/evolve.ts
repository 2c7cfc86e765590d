import type { InstallationEvent, InstallationStatus } from "./events.ts";

export type Platform = "github" | "slack" | "jira";

export type InstallationState =
  | { exists: false }
  | {
      exists: true;
      id: string;
      platform: Platform;
      externalId: string;
      /** Suspensions by the tenant and by the provider are separate: each side lifts only its own. */
      suspendedByTenant: boolean;
      suspendedByProvider: boolean;
      needsReauth: boolean;
      revoked: boolean;
      refreshFailures: number;
    };

export const initialInstallationState = (): InstallationState => ({ exists: false });

export function statusOf(state: Extract<InstallationState, { exists: true }>): InstallationStatus {
  if (state.revoked) return "revoked";
  if (state.suspendedByTenant || state.suspendedByProvider) return "suspended";
  if (state.needsReauth) return "needs_reauth";
  return "active";
}

export function evolveInstallation(state: InstallationState, event: InstallationEvent): InstallationState {
  if (event.type === "installation.created") {
    const d = event.data;
    return {
      exists: true,
      id: d.installationId,
      platform: d.platform,
      externalId: d.externalId,
      suspendedByTenant: false,
      suspendedByProvider: false,
      needsReauth: false,
      revoked: false,
      refreshFailures: 0,
    };
  }
  if (!state.exists) return state;
  switch (event.type) {
    case "installation.reauthorized":
      return { ...state, needsReauth: false, refreshFailures: 0 };
    case "installation.suspended":
      return event.data.by === "tenant" ? { ...state, suspendedByTenant: true } : { ...state, suspendedByProvider: true };
    case "installation.resumed":
      return event.data.by === "tenant" ? { ...state, suspendedByTenant: false } : { ...state, suspendedByProvider: false };
    case "installation.revoked":
      return { ...state, revoked: true };
    case "installation.credentials_refreshed":
      return { ...state, refreshFailures: 0 };
    case "installation.refresh_failed":
      return { ...state, refreshFailures: event.data.attempt };
    case "installation.needs_reauth":
      return { ...state, needsReauth: true };
    default:
      return state;
  }
}
