import { sql } from "kysely";
import type { Tx } from "../db.ts";
import { agentsProjection } from "./agentsProjection.ts";
import { alertRulesProjection } from "./alertRulesProjection.ts";
import { credentialsProjection } from "./credentialsProjection.ts";
import { githubOwnersProjection } from "./githubOwnersProjection.ts";
import { githubTokensProjection } from "./githubTokensProjection.ts";
import { identitiesProjection } from "./identitiesProjection.ts";
import { installationsProjection } from "./installationsProjection.ts";
import { logStreamsProjection } from "./logStreamsProjection.ts";
import type { ProjectedEvent, Projection } from "./projection.ts";
import { compileWrite, statementJson, type ProjectionStatement } from "./projectionSql.ts";
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
  logStreamsProjection,
  alertRulesProjection,
  identitiesProjection,
];

/** The writes that project these events, in order; a replay (rebuild) leaves out the read models it derives afterwards. */
export function projectionStatements(events: readonly ProjectedEvent[], replay = false): ProjectionStatement[] {
  const out: ProjectionStatement[] = [];
  for (const event of events) {
    for (const projection of projections) {
      if (replay && projection.deriveAfterReplay) continue;
      if (projection.handles.has(event.type)) for (const write of projection.project(event)) out.push(compileWrite(write));
    }
  }
  return out;
}

/**
 * Runs projection statements in the caller's transaction, in one round trip (keyplane_execute,
 * migrations/0013): a rebuild's page, or the lookup writes beside an append.
 */
export async function executeStatements(trx: Tx, statements: readonly ProjectionStatement[]): Promise<void> {
  if (statements.length === 0) return;
  await sql`select keyplane_execute(${JSON.stringify(statements.map(statementJson))}::jsonb)`.execute(trx);
}
