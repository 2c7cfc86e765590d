import type { Actor } from "../../auth/actor.ts";
import { ForbiddenError } from "../../errors.ts";

/**
 * The agent an enrolled agent's token acts as: its subject is `agent:<id>`, kind `agent`, role
 * `service` narrowed by scope `agent`. Anything else is refused: only an agent acts as an agent.
 */
export function agentIdOf(actor: Actor): string {
  if (actor.kind !== "agent" || !actor.subject.startsWith("agent:") || !actor.permissions.has("agent:act")) {
    throw new ForbiddenError("only an enrolled agent's own credential may do this");
  }
  return actor.subject.slice("agent:".length);
}
