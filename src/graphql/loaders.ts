import DataLoader from "dataloader";
import { withTenant } from "../store/db.ts";
import type { StoredEvent } from "../store/events/types.ts";
import { agentHistories } from "../store/queries/agentQueries.ts";
import type { GraphQLContext } from "./context.ts";

// Per-row fields of a list load in one batched query per request (DataLoader), never one per row.
// Created on first use for each request's context and gone with it.

export interface Loaders {
  /** An agent's first events, keyed "<first>:<agent id>" (one query per page size asked for). */
  agentHistory: DataLoader<string, StoredEvent[]>;
}

const perRequest = new WeakMap<GraphQLContext, Loaders>();

export function loadersOf(ctx: GraphQLContext): Loaders {
  let loaders = perRequest.get(ctx);
  if (!loaders) perRequest.set(ctx, (loaders = createLoaders(ctx)));
  return loaders;
}

function createLoaders(ctx: GraphQLContext): Loaders {
  const tenantId = () => ctx.actor!.tenantId;
  return {
    agentHistory: new DataLoader(async (keys) => {
      const byFirst = new Map<number, string[]>();
      for (const key of keys) {
        const [first, agentId] = [Number(key.slice(0, key.indexOf(":"))), key.slice(key.indexOf(":") + 1)];
        byFirst.set(first, [...(byFirst.get(first) ?? []), agentId]);
      }
      const found = new Map<string, StoredEvent[]>();
      await withTenant(ctx.deps.db, tenantId(), async (trx) => {
        for (const [first, agentIds] of byFirst) {
          for (const [agentId, events] of await agentHistories(trx, tenantId(), agentIds, first)) found.set(`${first}:${agentId}`, events);
        }
      });
      return keys.map((key) => found.get(key) ?? []);
    }),
  };
}
