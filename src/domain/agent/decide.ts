import { isDeepStrictEqual } from "node:util";
import { ConflictError, NotFoundError } from "../../errors.ts";
import { AgentCreated, AgentDeleted, AgentEnrolled, AgentOffline, AgentOnline, AgentPublished, AgentUpdated, type AgentEvent } from "./events.ts";
import type { AgentState } from "./evolve.ts";

/** What every agent event carries for notification consumers (see events.ts), given by the use case. */
export interface AgentNotificationMeta {
  tenantId: string;
  timestamp: string;
  correlationId?: string;
}

export type AgentCommand =
  | { type: "CreateAgent"; agentId: string; name: string; agentType: string; config: Record<string, unknown>; tags: string[]; ephemeral: boolean }
  | { type: "UpdateAgent"; expectedVersion: number; name?: string; agentType?: string; config?: Record<string, unknown>; tags?: string[] }
  | { type: "PublishAgent" }
  | { type: "DeleteAgent"; reason: string }
  | { type: "EnrollAgent"; keyId: string; keyPrefix: string; tags: string[]; host: Record<string, string> }
  | { type: "MarkOnline" }
  | { type: "MarkOffline"; lastSeenAt: string };

export type AgentCommandWithMeta = AgentCommand & { meta: AgentNotificationMeta };

export function decideAgent(command: AgentCommandWithMeta, state: AgentState): AgentEvent[] {
  const { meta } = command;
  const base = (s: { id: string; name: string }, version: number) => ({
    tenantId: meta.tenantId,
    agentId: s.id,
    agentName: s.name,
    version,
    timestamp: meta.timestamp,
    ...(meta.correlationId ? { correlationId: meta.correlationId } : {}),
  });
  if (command.type === "CreateAgent") {
    if (state.exists) throw new ConflictError(`agent ${command.agentId} already exists`);
    return [
      AgentCreated({
        ...base({ id: command.agentId, name: command.name }, 1),
        type: command.agentType,
        config: command.config,
        tags: command.tags,
        ephemeral: command.ephemeral,
      }),
    ];
  }
  if (!state.exists || state.status === "deleted") {
    if (command.type === "DeleteAgent" && state.exists) return [];
    throw new NotFoundError("agent");
  }
  switch (command.type) {
    case "UpdateAgent": {
      if (command.expectedVersion !== state.version)
        throw new ConflictError(`agent changed meanwhile: expected version ${command.expectedVersion}, it is ${state.version}`, {
          currentVersion: state.version,
        });
      const next = {
        name: command.name ?? state.name,
        type: command.agentType ?? state.type,
        config: command.config ?? state.config,
        tags: command.tags ?? state.tags,
      };
      const changed = (["name", "type", "config", "tags"] as const).filter((k) => !isDeepStrictEqual(next[k], k === "type" ? state.type : state[k]));
      if (!changed.length) return [];
      return [AgentUpdated({ ...base({ id: state.id, name: next.name }, state.version + 1), changed, type: next.type, config: next.config, tags: next.tags })];
    }
    case "PublishAgent":
      return state.status === "published" ? [] : [AgentPublished(base(state, state.version + 1))];
    case "DeleteAgent":
      return [AgentDeleted({ ...base(state, state.version + 1), reason: command.reason })];
    case "EnrollAgent": {
      const tags = [...new Set([...state.tags, ...command.tags])].sort();
      return [AgentEnrolled({ ...base(state, state.version + 1), keyId: command.keyId, keyPrefix: command.keyPrefix, tags, host: command.host })];
    }
    case "MarkOnline":
      return state.connection === "online" ? [] : [AgentOnline(base(state, state.version))];
    case "MarkOffline":
      return state.connection !== "online" ? [] : [AgentOffline({ ...base(state, state.version), lastSeenAt: command.lastSeenAt })];
  }
}
