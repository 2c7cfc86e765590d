import type { Actor, RequestMeta } from "../auth/actor.ts";
import type { AppDeps } from "../app/deps.ts";

/** Per request: who calls and from where. Log lines get request, tenant and actor from logContext. */
export interface GraphQLContext {
  actor: Actor | null;
  meta: RequestMeta;
  deps: AppDeps;
  /** "ws" over graphql-ws, whose socket follows its token (src/http/websocket.ts); absent over HTTP. */
  transport?: "ws";
}

/** The context of a field that requires a caller (t.withAuth({ authenticated }) or { permission }): the actor is known. */
export type AuthenticatedContext = GraphQLContext & { actor: Actor };
