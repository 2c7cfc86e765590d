import type { Decider, StreamName } from "../decider.ts";
import { decideAgent, type AgentCommandWithMeta } from "./decide.ts";
import type { AgentEvent } from "./events.ts";
import { evolveAgent, initialAgentState, type AgentState } from "./evolve.ts";

export const agentDecider: Decider<AgentState, AgentCommandWithMeta, AgentEvent> = {
  initialState: initialAgentState,
  evolve: evolveAgent,
  decide: decideAgent,
};

/** Each agent is its own stream; its id is a Keyplane UUID. */
export const agentStream = (agentId: string): StreamName => ({ streamType: "agent", streamId: agentId });
