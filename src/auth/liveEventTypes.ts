import { knownEventTypes } from "../domain/eventRegistry.ts";
import type { Permission } from "./permissions.ts";

// Who receives which events live (tenantEvents). With event:subscribe (admins, services): all of the
// tenant's events. Without it, a principal still receives the events of the areas it may read anyway
// (whoever lists agents sees an agent come online), by the event type's area, its prefix; sign-ins,
// refusals, sessions, credential reads and exports stay the auditors' and services'.
const AREA_READERS: Readonly<Record<string, Permission>> = {
  tenant: "tenant:read",
  agent: "agent:read",
  enrollment_key: "agent:read",
  task: "agent:read",
  installation: "installation:read",
  token_policy: "token-policy:read",
  token: "github-token:read",
  log_stream: "log-stream:manage",
  alert_rule: "alert-rule:manage",
  alert: "alert-rule:manage",
  identity: "identity:manage",
  github: "github-token:read",
};

/** Holding any of these, a principal receives some events live (tenantEvents' auth scope). */
export const LIVE_EVENT_PERMISSIONS: readonly Permission[] = ["event:subscribe", ...new Set(Object.values(AREA_READERS))];

const areaOf = (type: string) => type.slice(0, type.indexOf("."));

/** Every event type tenantEvents delivers to a principal holding these permissions (none: it may not subscribe). */
export function liveEventTypes(permissions: ReadonlySet<Permission>): string[] {
  const all = knownEventTypes();
  if (permissions.has("event:subscribe")) return all;
  return all.filter((type) => {
    const reader = AREA_READERS[areaOf(type)];
    return reader !== undefined && permissions.has(reader);
  });
}

/** Whether a principal receives every event (and may ask for types not yet known). */
export const receivesEveryEvent = (permissions: ReadonlySet<Permission>) => permissions.has("event:subscribe");
