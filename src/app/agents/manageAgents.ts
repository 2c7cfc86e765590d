import { randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import type { AgentCommand } from "../../domain/agent/decide.ts";
import { agentDecider, agentStream } from "../../domain/agent/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { checkAgentQuota, QuotaExceededError, type AgentQuota } from "./quotas.ts";
import { findAgentRow, type AgentRow } from "../../store/queries/agentQueries.ts";

const MAX_CONFIG_BYTES = 64 * 1024;
const name = z.string().trim().min(1, "must not be empty").max(200);
const type = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "a lower-case slug such as support-bot");
const tag = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9:._-]{0,62}$/, "tags are lower-case slugs");
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
export const AgentIdInput = z.object({ id: z.string().uuid("not an agent id") });

type Deps = Pick<AppDeps, "db" | "security" | "now"> & { config?: Pick<AppDeps["config"], "limits"> };

/**
 * One agent command in a tenant transaction, with the tier quota checked first when it counts; `answer`
 * reads what the mutation answers with, in the same transaction.
 */
async function run<T>(
  deps: Deps,
  actor: Actor,
  agentId: string,
  command: AgentCommand,
  request: RequestMeta,
  answer: (trx: Tx) => Promise<T>,
  quota?: AgentQuota,
): Promise<T> {
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
        occurredAt: now,
      });
      return answer(trx);
    });
  } catch (error) {
    if (error instanceof QuotaExceededError) {
      await deps.security.accessDenied({
        tenantId: actor.tenantId,
        actor,
        level: "info",
        reason: `quota:${error.quota}`,
        resource: "agent",
        action: quota,
        details: { limit: error.limit },
        request,
      });
    }
    throw error;
  }
}

/** The agent as the command's own transaction projected it (a deleted one too). */
const projectedAgent =
  (tenantId: string, agentId: string) =>
  async (trx: Tx): Promise<AgentRow> =>
    (await findAgentRow(trx, tenantId, agentId, { deleted: true }))!;

export async function createAgent(deps: Deps, actor: Actor, raw: z.input<typeof CreateAgentInput>, request: RequestMeta = {}) {
  const input = parseInput(CreateAgentInput, raw);
  const agentId = randomUUID();
  return run(
    deps,
    actor,
    agentId,
    { type: "CreateAgent", agentId, name: input.name, agentType: input.type, config: input.config, tags: [...new Set(input.tags)].sort(), ephemeral: false },
    request,
    projectedAgent(actor.tenantId, agentId),
    "agent-create",
  );
}

export async function updateAgent(deps: Deps, actor: Actor, raw: z.input<typeof UpdateAgentInput>, request: RequestMeta = {}) {
  const input = parseInput(UpdateAgentInput, raw);
  return run(
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

export async function publishAgent(deps: Deps, actor: Actor, rawId: unknown, request: RequestMeta = {}) {
  const { id } = parseInput(AgentIdInput, { id: rawId });
  return run(deps, actor, id, { type: "PublishAgent" }, request, projectedAgent(actor.tenantId, id));
}

/** Answers true: the mutation reports only that it happened, so nothing is read back. */
export async function deleteAgent(deps: Deps, actor: Actor, rawId: unknown, request: RequestMeta = {}): Promise<true> {
  const { id } = parseInput(AgentIdInput, { id: rawId });
  return run(deps, actor, id, { type: "DeleteAgent", reason: "deleted" }, request, async () => true as const);
}
