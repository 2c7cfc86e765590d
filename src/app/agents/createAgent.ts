import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { agentTags } from "../../domain/agent/tags.ts";
import { parseInput } from "../../domain/validation.ts";
import { agentConfig, agentName, agentType, projectedAgent, runAgentCommand, type AgentDeps } from "./agentCommand.ts";

export const CreateAgentInput = z.object({ name: agentName, type: agentType, config: agentConfig.default({}), tags: agentTags.default([]) });

export async function createAgent(deps: AgentDeps, actor: Actor, raw: z.input<typeof CreateAgentInput>, request: RequestMeta = {}) {
  const input = parseInput(CreateAgentInput, raw);
  const agentId = randomUUID();
  return runAgentCommand(
    deps,
    actor,
    agentId,
    { type: "CreateAgent", agentId, name: input.name, agentType: input.type, config: input.config, tags: [...new Set(input.tags)].sort(), ephemeral: false },
    request,
    projectedAgent(actor.tenantId, agentId),
    "agent-create",
  );
}
