import { sql, type Selectable } from "kysely";
import type { Tx } from "../db.ts";
import { rowToStoredEvent } from "../events/rowToStoredEvent.ts";
import type { StoredEvent } from "../events/types.ts";
import type { AgentsTable } from "../schema.ts";
import { readKeysetPage, type Page, type TimeIdPosition } from "./keysetPage.ts";

/** An agent as the read side serves it: its projected row and its last heartbeat, in one query. */
export type AgentRow = Selectable<AgentsTable> & { last_seen_at: Date | null };

export interface AgentFilter {
  status?: AgentRow["status"] | null;
  type?: string | null;
  tag?: string | null;
}

// The heartbeat lives in agent_presence (operational, not an event): joined here, so a page of agents
// costs one query whatever its size.
function agentsWithPresence(trx: Tx, tenantId: string) {
  return trx
    .selectFrom("agents")
    .leftJoin("agent_presence", (join) =>
      join.onRef("agent_presence.tenant_id", "=", "agents.tenant_id").onRef("agent_presence.agent_id", "=", "agents.agent_id"),
    )
    .selectAll("agents")
    .select("agent_presence.last_seen_at")
    .where("agents.tenant_id", "=", tenantId);
}

/** The tenant's agent, unless deleted (or also then: a mutation answering with the agent it deleted). */
export function findAgentRow(trx: Tx, tenantId: string, agentId: string, options: { deleted?: boolean } = {}): Promise<AgentRow | undefined> {
  const q = agentsWithPresence(trx, tenantId).where("agents.agent_id", "=", agentId);
  return (options.deleted ? q : q.where("agents.status", "<>", "deleted")).executeTakeFirst();
}

/** One page of the tenant's agents (not deleted), newest first: by creation time, then id. */
export function listAgents(trx: Tx, tenantId: string, filter: AgentFilter, page: { first: number; after?: TimeIdPosition }): Promise<Page<AgentRow>> {
  let q = agentsWithPresence(trx, tenantId).where("agents.status", "<>", "deleted");
  if (filter.status) q = q.where("agents.status", "=", filter.status);
  if (filter.type) q = q.where("agents.type", "=", filter.type);
  if (filter.tag) q = q.where(sql<boolean>`agents.tags @> ${JSON.stringify([filter.tag])}::jsonb`);
  return readKeysetPage(q, { columns: ["agents.created_at", "agents.agent_id"], direction: "desc" }, page);
}

/** What deciding a command on the agent needs of it (no join): its status and connection. */
export function findAgentState(trx: Tx, tenantId: string, agentId: string): Promise<Pick<AgentRow, "status" | "connection"> | undefined> {
  return trx.selectFrom("agents").select(["status", "connection"]).where("tenant_id", "=", tenantId).where("agent_id", "=", agentId).executeTakeFirst();
}

/**
 * The first `first` events each of these agents' streams still holds, oldest first: one query for
 * all of them (by rank, not by version: retention may have pruned a stream's first versions).
 */
export async function agentHistories(trx: Tx, tenantId: string, agentIds: string[], first: number): Promise<Map<string, StoredEvent[]>> {
  const rows = await trx
    .selectFrom((eb) =>
      eb
        .selectFrom("events")
        .selectAll()
        .select(sql<number>`row_number() over (partition by stream_id order by stream_version)`.as("rank"))
        .where("tenant_id", "=", tenantId)
        .where("stream_type", "=", "agent")
        .where("stream_id", "in", agentIds)
        .as("e"),
    )
    .selectAll()
    .where("rank", "<=", first)
    .orderBy("stream_id")
    .orderBy("stream_version")
    .execute();
  const histories = new Map<string, StoredEvent[]>(agentIds.map((id) => [id, []]));
  for (const row of rows) histories.get(row.stream_id)!.push(rowToStoredEvent(row));
  return histories;
}

/** Platform-wide (withPlatform): agents still online whose last heartbeat is older than `silentSince`. */
export function silentOnlineAgents(trx: Tx, silentSince: Date, limit: number): Promise<Array<{ tenant_id: string; agent_id: string; last_seen_at: Date }>> {
  return trx
    .selectFrom("agents")
    .innerJoin("agent_presence", (j) => j.onRef("agent_presence.tenant_id", "=", "agents.tenant_id").onRef("agent_presence.agent_id", "=", "agents.agent_id"))
    .select(["agents.tenant_id", "agents.agent_id", "agent_presence.last_seen_at"])
    .where("agents.connection", "=", "online")
    .where("agents.status", "<>", "deleted")
    .where("agent_presence.last_seen_at", "<", silentSince)
    .limit(limit)
    .execute();
}

/** Platform-wide (withPlatform): ephemeral agents offline since before `offlineBefore`, not yet deleted. */
export function expiredEphemeralAgents(trx: Tx, offlineBefore: Date, limit: number): Promise<Array<{ tenant_id: string; agent_id: string }>> {
  return trx
    .selectFrom("agents")
    .select(["tenant_id", "agent_id"])
    .where("ephemeral", "=", true)
    .where("status", "<>", "deleted")
    .where("connection", "=", "offline")
    .where("offline_since", "<", offlineBefore)
    .limit(limit)
    .execute();
}
