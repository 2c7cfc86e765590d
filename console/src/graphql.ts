import { initGraphQLTada } from "gql.tada";
import type { introspection } from "./graphql-env.d.ts";

/**
 * Typed documents checked against schema/schema.graphql (gql.tada): a query naming a field the API
 * does not have, or reading a result it does not return, fails `npm run typecheck`.
 * graphql-env.d.ts is generated from the schema by `npm run typecheck` itself.
 */
export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: { DateTime: string; JSON: unknown };
}>();

export type { FragmentOf, ResultOf, VariablesOf } from "gql.tada";
