import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { parseInput } from "../../domain/validation.ts";
import { AgentIdInput, runAgentCommand, type AgentDeps } from "./agentCommand.ts";

/** Answers true: the mutation reports only that it happened, so nothing is read back. */
export async function deleteAgent(deps: AgentDeps, actor: Actor, rawId: unknown, request: RequestMeta = {}): Promise<true> {
  const { id } = parseInput(AgentIdInput, { id: rawId });
  return runAgentCommand(deps, actor, id, { type: "DeleteAgent", reason: "deleted" }, request, async () => true as const);
}
