import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import type { AgentCommand } from "../../domain/agent/decide.ts";
import { agentDecider, agentStream } from "../../domain/agent/decider.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import { findAgentRow, type AgentRow } from "../../store/queries/agentQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { checkAgentQuota, QuotaExceededError, type AgentQuota } from "./quotas.ts";

// What the agent use cases (createAgent, updateAgent, publishAgent, deleteAgent) share: their input
// fields, and running one agent command.

const MAX_CONFIG_BYTES = 64 * 1024;
export const agentName = z.string().trim().min(1, "must not be empty").max(200);
export const agentType = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "a lower-case slug such as support-bot");
export const agentConfig = z
  .record(z.string(), z.unknown())
  .refine((c) => Buffer.byteLength(JSON.stringify(c)) <= MAX_CONFIG_BYTES, `at most ${MAX_CONFIG_BYTES / 1024} KB of JSON`);

export const AgentIdInput = z.object({ id: z.string().uuid("not an agent id") });

export type AgentDeps = Pick<AppDeps, "db" | "security" | "now"> & { config?: Pick<AppDeps["config"], "limits"> };

/**
 * One agent command in a tenant transaction, with the tier quota checked first when it counts; `answer`
 * reads what the mutation answers with, in the same transaction.
 */
export async function runAgentCommand<T>(
  deps: AgentDeps,
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

export /** The agent as the command's own transaction projected it (a deleted one too). */
const projectedAgent =
  (tenantId: string, agentId: string) =>
  async (trx: Tx): Promise<AgentRow> =>
    (await findAgentRow(trx, tenantId, agentId, { deleted: true }))!;
