import DataLoader from "dataloader";
import { getArgumentValues, getNamedType, isObjectType, type GraphQLObjectType, type GraphQLResolveInfo, type SelectionSetNode } from "graphql";
import { withTenant, type Tx } from "../store/db.ts";
import type { StoredEvent } from "../store/events/types.ts";
import { agentHistories, type AgentRow } from "../store/queries/agentQueries.ts";
import type { AuthenticatedContext } from "./context.ts";
import { MAX_PAGE_SIZE } from "./pagination.ts";

// Per-row fields of a list load in one batched query per request (DataLoader), never one per row.
// Created on first use for each request's context and gone with it.

export interface Loaders {
  /** An agent's first events, keyed "<first>:<agent id>" (one query per page size asked for). */
  agentHistory: DataLoader<string, StoredEvent[]>;
}

const perRequest = new WeakMap<AuthenticatedContext, Loaders>();

export function loadersOf(ctx: AuthenticatedContext): Loaders {
  let loaders = perRequest.get(ctx);
  if (!loaders) perRequest.set(ctx, (loaders = createLoaders(ctx)));
  return loaders;
}

export const DEFAULT_HISTORY_SIZE = 50;
const historyKey = (first: number, agentId: string) => `${first}:${agentId}`;

function createLoaders(ctx: AuthenticatedContext): Loaders {
  const tenantId = () => ctx.actor.tenantId;
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
          for (const [agentId, events] of await agentHistories(trx, tenantId(), agentIds, first)) found.set(historyKey(first, agentId), events);
        }
      });
      return keys.map((key) => found.get(key) ?? []);
    }),
  };
}

/**
 * Inside the transaction that read these agents: when the operation selects their `history`, it is
 * read now, in that transaction, and kept for Agent.history, which then needs no transaction of its
 * own (a page of agents with their histories: one BEGIN, two queries, one COMMIT).
 */
export async function preloadAgentHistories(ctx: AuthenticatedContext, info: GraphQLResolveInfo, trx: Tx, agents: AgentRow[]): Promise<void> {
  if (agents.length === 0) return;
  const firsts = new Set(selectedArguments(info, "Agent", "history").map((args) => Number(args.first ?? DEFAULT_HISTORY_SIZE)));
  const loader = loadersOf(ctx).agentHistory;
  for (const first of firsts) {
    // An invalid size is the field's own error to raise, when it resolves.
    if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) continue;
    const histories = await agentHistories(
      trx,
      ctx.actor.tenantId,
      agents.map((a) => a.agent_id),
      first,
    );
    for (const [agentId, events] of histories) loader.prime(historyKey(first, agentId), events);
  }
}

/**
 * The arguments (variables and defaults applied) of every `typeName.fieldName` selected below the
 * field being resolved, through nested fields, inline fragments and named fragments.
 */
function selectedArguments(info: GraphQLResolveInfo, typeName: string, fieldName: string): Array<Record<string, unknown>> {
  const found: Array<Record<string, unknown>> = [];
  const visit = (selectionSet: SelectionSetNode | undefined, parent: GraphQLObjectType) => {
    for (const selection of selectionSet?.selections ?? []) {
      if (selection.kind === "Field") {
        const field = parent.getFields()[selection.name.value];
        if (!field) continue;
        if (parent.name === typeName && field.name === fieldName) found.push(getArgumentValues(field, selection, info.variableValues));
        const type = getNamedType(field.type);
        if (isObjectType(type)) visit(selection.selectionSet, type);
      } else {
        const fragment = selection.kind === "InlineFragment" ? selection : info.fragments[selection.name.value];
        const condition = fragment?.typeCondition ? info.schema.getType(fragment.typeCondition.name.value) : parent;
        if (fragment && isObjectType(condition)) visit(fragment.selectionSet, condition);
      }
    }
  };
  const returned = getNamedType(info.returnType);
  if (isObjectType(returned)) for (const node of info.fieldNodes) visit(node.selectionSet, returned);
  return found;
}
