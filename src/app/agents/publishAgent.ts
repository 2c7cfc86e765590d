import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { parseInput } from "../../domain/validation.ts";
import { AgentIdInput, projectedAgent, runAgentCommand, type AgentDeps } from "./agentCommand.ts";

export async function publishAgent(deps: AgentDeps, actor: Actor, rawId: unknown, request: RequestMeta = {}) {
  const { id } = parseInput(AgentIdInput, { id: rawId });
  return runAgentCommand(deps, actor, id, { type: "PublishAgent" }, request, projectedAgent(actor.tenantId, id));
}
