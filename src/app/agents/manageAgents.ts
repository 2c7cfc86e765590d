import { randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import type { AgentCommand } from "../../domain/agent/agent.ts";
import { parseInput } from "../../domain/validation.ts";
import { NotFoundError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { agentDecider, agentStream } from "./agentStream.ts";
import { checkAgentQuota, QuotaExceededError, type AgentQuota } from "./quotas.ts";
import { findAgentRow, type AgentRow } from "../../store/queries/agentQueries.ts";

const MAX_CONFIG_BYTES = 64 * 1024;
const name = z.string().trim().min(1, "must not be empty").max(200);
const type = z.string().trim().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "a lower-case slug such as support-bot");
const tag = z.string().trim().regex(/^[a-z0-9][a-z0-9:._-]{0,62}$/, "tags are lower-case slugs");
const config = z
  .record(z.string(), z.unknown())
  .refine((c) => Buffer.byteLength(JSON.stringify(c)) <= MAX_CONFIG_BYTES, `at most ${MAX_CONFIG_BYTES / 1024} KB of JSON`);

export const CreateAgentInput = z.object({ name, type, config: config.default({}), tags: z.array(tag).max(50).default([]) });
export const UpdateAgentInput = z.object({
  id: z.string().uuid("not an agent id"),
  expectedVersion: z.number().int().positive(),
  name: name.optional(),
  type: type.optional(),
  config: config.optional(),
  tags: z.array(tag).max(50).optional(),
});
const AgentId = z.object({ id: z.string().uuid("not an agent id") });

type Deps = Pick<AppDeps, "db" | "security" | "now"> & { config?: Pick<AppDeps["config"], "limits"> };

/**
 * One agent command in a tenant transaction, with the tier quota checked first when it counts; answers
 * the agent as projected, read in the same transaction (a deleted one too).
 */
async function run(deps: Deps, actor: Actor, agentId: string, command: AgentCommand, request: RequestMeta, quota?: AgentQuota): Promise<AgentRow> {
  const now = deps.now();
  try {
    return await withTenant(deps.db, actor.tenantId, async (trx) => {
      if (quota) await checkAgentQuota(trx, actor.tenantId, quota, now, deps.config?.limits.agentQuotas);
      await decideAndAppend(trx, {
        tenantId: actor.tenantId,
        ...agentStream(agentId),
        decider: agentDecider,
        command: { ...command, meta: { tenantId: actor.tenantId, timestamp: now.toISOString(), correlationId: request.correlationId ?? request.requestId } },
        metadata: eventMetadata(actor, request),
      });
      return (await findAgentRow(trx, actor.tenantId, agentId, { deleted: true }))!;
    });
  } catch (error) {
    if (error instanceof QuotaExceededError) {
      await deps.security.record({ type: "access.denied", tenantId: actor.tenantId, actor, level: "info", status: "denied", reason: `quota:${error.quota}`, resource: "agent", action: quota, details: { limit: error.limit }, request });
    }
    throw error;
  }
}

export async function createAgent(deps: Deps, actor: Actor, raw: z.input<typeof CreateAgentInput>, request: RequestMeta = {}) {
  const input = parseInput(CreateAgentInput, raw);
  const agentId = randomUUID();
  return run(deps, actor, agentId, { type: "CreateAgent", agentId, name: input.name, agentType: input.type, config: input.config, tags: [...new Set(input.tags)].sort(), ephemeral: false }, request, "agent-create");
}

export async function updateAgent(deps: Deps, actor: Actor, raw: z.input<typeof UpdateAgentInput>, request: RequestMeta = {}) {
  const input = parseInput(UpdateAgentInput, raw);
  return run(deps, actor, input.id, { type: "UpdateAgent", expectedVersion: input.expectedVersion, name: input.name, agentType: input.type, config: input.config, tags: input.tags ? [...new Set(input.tags)].sort() : undefined }, request, "agent-update");
}

export async function publishAgent(deps: Deps, actor: Actor, rawId: unknown, request: RequestMeta = {}) {
  const { id } = parseInput(AgentId, { id: rawId });
  return run(deps, actor, id, { type: "PublishAgent" }, request);
}

export async function deleteAgent(deps: Deps, actor: Actor, rawId: unknown, request: RequestMeta = {}) {
  const { id } = parseInput(AgentId, { id: rawId });
  return run(deps, actor, id, { type: "DeleteAgent", reason: "deleted" }, request);
}

/** The tenant's agent (deleted ones are gone from the read side), or NOT_FOUND. */
export async function findAgent(deps: Pick<AppDeps, "db">, tenantId: string, rawId: unknown) {
  const { id } = parseInput(AgentId, { id: rawId });
  const row = await withTenant(deps.db, tenantId, (trx) => findAgentRow(trx, tenantId, id));
  if (!row) throw new NotFoundError("agent");
  return row;
}
