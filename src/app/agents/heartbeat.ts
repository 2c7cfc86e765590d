import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { agentDecider, agentStream } from "../../domain/agent/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { NotFoundError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import { findAgentState } from "../../store/queries/agentQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { agentIdOf } from "./agentPrincipal.ts";

export const HeartbeatInput = z.object({
  status: z
    .string()
    .trim()
    .regex(/^[a-z][a-z_-]{0,30}$/, "a short lower-case word such as ready or busy")
    .default("ready"),
  facts: z
    .record(z.string(), z.unknown())
    .refine((f) => Buffer.byteLength(JSON.stringify(f)) <= 8192, "at most 8 KB of JSON")
    .default({}),
});

/**
 * An agent says it is alive. The beat itself is a row update (agent_presence), not an event; only a
 * change of connection (coming online) is appended.
 */
export async function agentHeartbeat(deps: Pick<AppDeps, "db" | "now">, actor: Actor, raw: z.input<typeof HeartbeatInput>, request: RequestMeta = {}) {
  const agentId = agentIdOf(actor);
  const input = parseInput(HeartbeatInput, raw);
  const now = deps.now();
  return withTenant(deps.db, actor.tenantId, async (trx) => {
    const agent = await findAgentState(trx, actor.tenantId, agentId);
    if (!agent || agent.status === "deleted") throw new NotFoundError("agent");
    const row = { last_seen_at: now, status: input.status, facts: JSON.stringify(input.facts) };
    await trx
      .insertInto("agent_presence")
      .values({ tenant_id: actor.tenantId, agent_id: agentId, ...row })
      .onConflict((oc) => oc.columns(["tenant_id", "agent_id"]).doUpdateSet(row))
      .execute();
    if (agent.connection !== "online") {
      await decideAndAppend(trx, {
        tenantId: actor.tenantId,
        ...agentStream(agentId),
        decider: agentDecider,
        command: {
          type: "MarkOnline",
          meta: { tenantId: actor.tenantId, timestamp: now.toISOString(), correlationId: request.correlationId ?? request.requestId },
        },
        metadata: eventMetadata(actor, request),
        occurredAt: now,
      });
    }
    return { agentId, connection: "online" as const, lastSeenAt: now };
  });
}
