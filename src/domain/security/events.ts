import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// Security events share the audit fields auditors filter on; who, from where and which request
// travel in the event metadata like every other event.
const securityFields = {
  level: z.enum(["info", "warning", "critical"]),
  resource: z.string().optional(),
  action: z.string().optional(),
  status: z.enum(["denied", "failed"]),
  reason: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  /** How many identical events were folded into this one by sampling since the last one recorded. */
  suppressed: z.number().int().nonnegative().optional(),
};

export const AuthFailed = defineEvent("auth.failed", 1, z.object(securityFields));
export const AccessDenied = defineEvent("access.denied", 1, z.object(securityFields));

export const securityEvents = [AuthFailed, AccessDenied] as const;
export type SecurityEvent = EventOf<typeof AuthFailed> | EventOf<typeof AccessDenied>;
