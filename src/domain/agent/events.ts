import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// Agent events carry, besides their own facts, what notification consumers read without looking at
// the envelope: tenant id, agent id and name, version, timestamp and the request's correlation id.
const notification = {
  tenantId: z.string(),
  agentId: z.string(),
  agentName: z.string(),
  version: z.number().int().positive(),
  timestamp: z.string(),
  correlationId: z.string().optional(),
};

export const agentStatusSchema = z.enum(["draft", "published", "deleted"]);
export const configSchema = z.record(z.string(), z.unknown());

export const AgentCreated = defineEvent(
  "agent.created",
  1,
  z.object({ ...notification, type: z.string(), config: configSchema, tags: z.array(z.string()), ephemeral: z.boolean() }),
);
export const AgentUpdated = defineEvent(
  "agent.updated",
  1,
  z.object({ ...notification, changed: z.array(z.string()), type: z.string(), config: configSchema, tags: z.array(z.string()) }),
);
export const AgentPublished = defineEvent("agent.published", 1, z.object(notification));
export const AgentDeleted = defineEvent("agent.deleted", 1, z.object({ ...notification, reason: z.string() }));
export const AgentEnrolled = defineEvent(
  "agent.enrolled",
  1,
  z.object({ ...notification, keyId: z.string(), keyPrefix: z.string(), tags: z.array(z.string()), host: z.record(z.string(), z.string()) }),
);
export const AgentOnline = defineEvent("agent.online", 1, z.object(notification));
export const AgentOffline = defineEvent("agent.offline", 1, z.object({ ...notification, lastSeenAt: z.string() }));

export const agentEvents = [AgentCreated, AgentUpdated, AgentPublished, AgentDeleted, AgentEnrolled, AgentOnline, AgentOffline] as const;
export type AgentEvent = EventOf<(typeof agentEvents)[number]>;
