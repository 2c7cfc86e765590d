import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import { agentsProjection } from "./agentsProjection.ts";
import { credentialsProjection } from "./credentialsProjection.ts";
import { githubOwnersProjection } from "./githubOwnersProjection.ts";
import { githubTokensProjection } from "./githubTokensProjection.ts";
import { installationsProjection } from "./installationsProjection.ts";
import type { Projection } from "./projection.ts";
import { tasksProjection } from "./tasksProjection.ts";
import { tenantsProjection } from "./tenantsProjection.ts";

/** Every inline projection; later areas add theirs here. */
export const projections: readonly Projection[] = [
  tenantsProjection,
  credentialsProjection,
  installationsProjection,
  githubOwnersProjection,
  githubTokensProjection,
  agentsProjection,
  tasksProjection,
];

/** Projects appended events; a replay (rebuild) leaves out the read models it derives afterwards. */
export async function applyProjections(trx: Tx, events: readonly StoredEvent[], replay = false): Promise<void> {
  for (const event of events) {
    for (const projection of projections) {
      if (replay && projection.deriveAfterReplay) continue;
      if (projection.handles.has(event.type)) await projection.apply(trx, event);
    }
  }
}
