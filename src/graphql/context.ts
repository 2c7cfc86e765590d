import type { Actor, RequestMeta } from "../auth/actor.ts";
import type { AppDeps } from "../app/deps.ts";
import type { Logger } from "../logger.ts";

export interface GraphQLContext {
  actor: Actor | null;
  meta: RequestMeta;
  deps: AppDeps;
  logger: Logger;
}
