import type { AgentEvent } from "./events.ts";

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
    return {
      exists: true,
      id: d.agentId,
      name: d.agentName,
      type: d.type,
      version: d.version,
      config: d.config,
      tags: d.tags,
      status: "draft",
      ephemeral: d.ephemeral,
      connection: "pending",
    };
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
