import { sql, type Selectable } from "kysely";
import type { Tx } from "../db.ts";
import { rowToStoredEvent } from "../events/rowToStoredEvent.ts";
import type { StoredEvent } from "../events/types.ts";
import type { AgentsTable } from "../schema.ts";

/** An agent as the read side serves it: its projected row and its last heartbeat, in one query. */
export type AgentRow = Selectable<AgentsTable> & { last_seen_at: Date | null };

export interface AgentFilter {
  status?: AgentRow["status"] | null;
  type?: string | null;
  tag?: string | null;
}

/** Keyset position of the list: newest first, by creation time then id. */
export interface AgentCursor {
  createdAt: Date;
  id: string;
}

// The heartbeat lives in agent_presence (operational, not an event): joined here, so a page of agents
// costs one query whatever its size.
function agentsWithPresence(trx: Tx, tenantId: string) {
  return trx
    .selectFrom("agents")
    .leftJoin("agent_presence", (join) => join.onRef("agent_presence.tenant_id", "=", "agents.tenant_id").onRef("agent_presence.agent_id", "=", "agents.agent_id"))
    .selectAll("agents")
    .select("agent_presence.last_seen_at")
    .where("agents.tenant_id", "=", tenantId);
}

/** The tenant's agent, unless deleted (or also then: a mutation answering with the agent it deleted). */
export function findAgentRow(trx: Tx, tenantId: string, agentId: string, options: { deleted?: boolean } = {}): Promise<AgentRow | undefined> {
  const q = agentsWithPresence(trx, tenantId).where("agents.agent_id", "=", agentId);
  return (options.deleted ? q : q.where("agents.status", "<>", "deleted")).executeTakeFirst();
}

/** One page of the tenant's agents (not deleted), newest first, and whether more follow. */
export async function listAgents(trx: Tx, tenantId: string, filter: AgentFilter, page: { first: number; after?: AgentCursor }): Promise<{ rows: AgentRow[]; hasNextPage: boolean }> {
  let q = agentsWithPresence(trx, tenantId).where("agents.status", "<>", "deleted");
  if (filter.status) q = q.where("agents.status", "=", filter.status);
  if (filter.type) q = q.where("agents.type", "=", filter.type);
  if (filter.tag) q = q.where(sql<boolean>`agents.tags @> ${JSON.stringify([filter.tag])}::jsonb`);
  const after = page.after;
  if (after) q = q.where((eb) => eb.or([eb("agents.created_at", "<", after.createdAt), eb.and([eb("agents.created_at", "=", after.createdAt), eb("agents.agent_id", "<", after.id)])]));
  const rows = await q.orderBy("agents.created_at", "desc").orderBy("agents.agent_id", "desc").limit(page.first + 1).execute();
  return { rows: rows.slice(0, page.first), hasNextPage: rows.length > page.first };
}

/** The first `first` events of each of these agents' streams, oldest first: one query for all of them. */
export async function agentHistories(trx: Tx, tenantId: string, agentIds: string[], first: number): Promise<Map<string, StoredEvent[]>> {
  const rows = await trx
    .selectFrom("events")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("stream_type", "=", "agent")
    .where("stream_id", "in", agentIds)
    .where("stream_version", "<=", first)
    .orderBy("stream_id")
    .orderBy("stream_version")
    .execute();
  const histories = new Map<string, StoredEvent[]>(agentIds.map((id) => [id, []]));
  for (const row of rows) histories.get(row.stream_id)!.push(rowToStoredEvent(row));
  return histories;
}
