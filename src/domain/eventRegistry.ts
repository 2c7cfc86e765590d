import { BadInputError } from "../errors.ts";
import type { EventDefinition } from "./eventDefinition.ts";
import { agentEvents } from "./agent/events.ts";
import { alertRuleEvents } from "./alertRule/events.ts";
import { auditEvents } from "./audit/events.ts";
import { enrollmentKeyEvents } from "./enrollmentKey/events.ts";
import { githubOperationEvents } from "./githubOperation/events.ts";
import { githubTokenEvents } from "./githubToken/events.ts";
import { identityEvents } from "./identity/events.ts";
import { installationEvents } from "./installation/events.ts";
import { logStreamEvents } from "./logStream/events.ts";
import { securityEvents } from "./security/events.ts";
import { sessionEvents } from "./session/events.ts";
import { taskEvents } from "./task/events.ts";
import { tenantEvents } from "./tenant/events.ts";
import { tokenPolicyEvents } from "./tokenPolicy/events.ts";

// Every event type Keyplane may append. The store validates each event against it on the way in.
const definitions: ReadonlyArray<EventDefinition<string, any>> = [
  ...tenantEvents,
  ...sessionEvents,
  ...securityEvents,
  ...installationEvents,
  ...tokenPolicyEvents,
  ...githubTokenEvents,
  ...agentEvents,
  ...enrollmentKeyEvents,
  ...taskEvents,
  ...auditEvents,
  ...logStreamEvents,
  ...alertRuleEvents,
  ...identityEvents,
  ...githubOperationEvents,
];

const byType = new Map(definitions.map((d) => [d.type, d]));

export function eventDefinition(type: string): EventDefinition<string, any> {
  const def = byType.get(type);
  if (!def) throw new BadInputError(`unknown event type ${type}`);
  return def;
}

export function validateEventData(type: string, data: unknown): { schemaVersion: number; data: Record<string, unknown> } {
  const def = eventDefinition(type);
  return { schemaVersion: def.schemaVersion, data: def.schema.parse(data) };
}

export const knownEventTypes = (): string[] => [...byType.keys()];
