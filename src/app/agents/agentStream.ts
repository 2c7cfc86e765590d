import { decideAgent, decideEnrollmentKey, evolveAgent, evolveEnrollmentKey, initialAgentState, initialEnrollmentKeyState } from "../../domain/agent/agent.ts";

export const agentDecider = { initialState: initialAgentState, evolve: evolveAgent, decide: decideAgent };
export const enrollmentKeyDecider = { initialState: initialEnrollmentKeyState, evolve: evolveEnrollmentKey, decide: decideEnrollmentKey };
export const agentStream = (agentId: string) => ({ streamType: "agent", streamId: agentId });
export const enrollmentKeyStream = (keyId: string) => ({ streamType: "enrollment_key", streamId: keyId });
