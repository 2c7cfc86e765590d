import { isDeepStrictEqual } from "node:util";
import { ConflictError, NotFoundError, UnauthenticatedError } from "../../errors.ts";
import {
  AgentCreated,
  AgentDeleted,
  AgentEnrolled,
  AgentOffline,
  AgentOnline,
  AgentPublished,
  AgentUpdated,
  EnrollmentKeyCreated,
  EnrollmentKeyPruned,
  EnrollmentKeyRevoked,
  EnrollmentKeyUsed,
  type AgentEvent,
} from "./events.ts";

// Agents and enrollment keys: pure decide/evolve, no I/O.

export type AgentState =
  | { exists: false }
  | {
      exists: true;
      id: string;
      name: string;
      type: string;
      version: number;
      config: Record<string, unknown>;
      tags: string[];
      status: "draft" | "published" | "deleted";
      ephemeral: boolean;
      connection: "pending" | "online" | "offline";
    };

export const initialAgentState = (): AgentState => ({ exists: false });

export function evolveAgent(state: AgentState, event: AgentEvent): AgentState {
  if (event.type === "agent.created") {
    const d = event.data;
    return { exists: true, id: d.agentId, name: d.agentName, type: d.type, version: d.version, config: d.config, tags: d.tags, status: "draft", ephemeral: d.ephemeral, connection: "pending" };
  }
  if (!state.exists) return state;
  switch (event.type) {
    case "agent.updated":
      return { ...state, name: event.data.agentName, type: event.data.type, config: event.data.config, tags: event.data.tags, version: event.data.version };
    case "agent.published":
      return { ...state, status: "published", version: event.data.version };
    case "agent.deleted":
      return { ...state, status: "deleted", version: event.data.version };
    case "agent.enrolled":
      return { ...state, tags: event.data.tags, version: event.data.version };
    case "agent.online":
      return { ...state, connection: "online" };
    case "agent.offline":
      return { ...state, connection: "offline" };
    default:
      return state;
  }
}

interface Meta {
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

export function decideAgent(command: AgentCommand & { meta: Meta }, state: AgentState): AgentEvent[] {
  const { meta } = command;
  const base = (s: { id: string; name: string }, version: number) => ({ tenantId: meta.tenantId, agentId: s.id, agentName: s.name, version, timestamp: meta.timestamp, ...(meta.correlationId ? { correlationId: meta.correlationId } : {}) });
  if (command.type === "CreateAgent") {
    if (state.exists) throw new ConflictError(`agent ${command.agentId} already exists`);
    return [AgentCreated({ ...base({ id: command.agentId, name: command.name }, 1), type: command.agentType, config: command.config, tags: command.tags, ephemeral: command.ephemeral })];
  }
  if (!state.exists || state.status === "deleted") {
    if (command.type === "DeleteAgent" && state.exists) return [];
    throw new NotFoundError("agent");
  }
  switch (command.type) {
    case "UpdateAgent": {
      if (command.expectedVersion !== state.version) throw new ConflictError(`agent changed meanwhile: expected version ${command.expectedVersion}, it is ${state.version}`, { currentVersion: state.version });
      const next = { name: command.name ?? state.name, type: command.agentType ?? state.type, config: command.config ?? state.config, tags: command.tags ?? state.tags };
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

export type EnrollmentKeyState =
  | { exists: false }
  | { exists: true; keyId: string; reusable: boolean; maxUses: number | null; uses: number; expiresAt: string; revoked: boolean; agentId: string | null };

export const initialEnrollmentKeyState = (): EnrollmentKeyState => ({ exists: false });

export function evolveEnrollmentKey(state: EnrollmentKeyState, event: AgentEvent): EnrollmentKeyState {
  if (event.type === "enrollment_key.created") {
    const d = event.data;
    return { exists: true, keyId: d.keyId, reusable: d.reusable, maxUses: d.maxUses, uses: 0, expiresAt: d.expiresAt, revoked: false, agentId: d.agentId };
  }
  if (!state.exists) return state;
  if (event.type === "enrollment_key.used") return { ...state, uses: event.data.use };
  if (event.type === "enrollment_key.revoked") return { ...state, revoked: true };
  return state;
}

/** One message for every refused key: which check failed goes to the audit log, not to the caller. */
export const INVALID_ENROLLMENT_KEY = "invalid, expired or used enrollment key";

export type EnrollmentKeyCommand =
  | { type: "CreateEnrollmentKey"; data: Parameters<typeof EnrollmentKeyCreated>[0] }
  | { type: "UseEnrollmentKey"; agentId: string; now: string }
  | { type: "RevokeEnrollmentKey" }
  | { type: "PruneEnrollmentKey"; reason: string };

export function keyRefusal(state: EnrollmentKeyState, now: string): string | null {
  if (!state.exists) return "unknown";
  if (state.revoked) return "revoked";
  if (state.expiresAt <= now) return "expired";
  const limit = state.reusable ? state.maxUses : 1;
  if (limit !== null && state.uses >= limit) return "used-up";
  return null;
}

export function decideEnrollmentKey(command: EnrollmentKeyCommand, state: EnrollmentKeyState): AgentEvent[] {
  switch (command.type) {
    case "CreateEnrollmentKey":
      if (state.exists) throw new ConflictError("enrollment key exists");
      return [EnrollmentKeyCreated(command.data)];
    case "UseEnrollmentKey":
      if (keyRefusal(state, command.now) || !state.exists) throw new UnauthenticatedError(INVALID_ENROLLMENT_KEY);
      return [EnrollmentKeyUsed({ keyId: state.keyId, agentId: command.agentId, use: state.uses + 1 })];
    case "RevokeEnrollmentKey":
      if (!state.exists) throw new NotFoundError("enrollment key");
      return state.revoked ? [] : [EnrollmentKeyRevoked({ keyId: state.keyId })];
    case "PruneEnrollmentKey":
      if (!state.exists) throw new NotFoundError("enrollment key");
      return [EnrollmentKeyPruned({ keyId: state.keyId, reason: command.reason })];
  }
}
