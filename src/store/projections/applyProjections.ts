import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import { agentsProjection } from "./agentsProjection.ts";
import { credentialsProjection } from "./credentialsProjection.ts";
import { githubTokensProjection } from "./githubTokensProjection.ts";
import { installationsProjection } from "./installationsProjection.ts";
import type { Projection } from "./projection.ts";
import { tasksProjection } from "./tasksProjection.ts";
import { tenantsProjection } from "./tenantsProjection.ts";

/** Every inline projection; later areas add theirs here. */
export const projections: readonly Projection[] = [tenantsProjection, credentialsProjection, installationsProjection, githubTokensProjection, agentsProjection, tasksProjection];

export async function applyProjections(trx: Tx, events: readonly StoredEvent[]): Promise<void> {
  for (const event of events) {
    for (const projection of projections) {
      if (projection.handles.has(event.type)) await projection.apply(trx, event);
    }
  }
}
