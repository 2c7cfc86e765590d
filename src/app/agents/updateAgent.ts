import { z } from "zod";
import type { Actor, RequestMeta } from "../../auth/actor.ts";
import { agentTags } from "../../domain/agent/tags.ts";
import { parseInput } from "../../domain/validation.ts";
import { agentConfig, agentName, agentType, projectedAgent, runAgentCommand, type AgentDeps } from "./agentCommand.ts";

export const UpdateAgentInput = z.object({
  id: z.string().uuid("not an agent id"),
  expectedVersion: z.number().int().positive(),
  name: agentName.optional(),
  type: agentType.optional(),
  config: agentConfig.optional(),
  tags: agentTags.optional(),
});

export async function updateAgent(deps: AgentDeps, actor: Actor, raw: z.input<typeof UpdateAgentInput>, request: RequestMeta = {}) {
  const input = parseInput(UpdateAgentInput, raw);
  return runAgentCommand(
    deps,
    actor,
    input.id,
    {
      type: "UpdateAgent",
      expectedVersion: input.expectedVersion,
      name: input.name,
      agentType: input.type,
      config: input.config,
      tags: input.tags ? [...new Set(input.tags)].sort() : undefined,
    },
    request,
    projectedAgent(actor.tenantId, input.id),
    "agent-update",
  );
}
