import type { DeleteQueryBuilder, InsertQueryBuilder, UpdateQueryBuilder } from "kysely";
import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import type { Database, ProjectedTable } from "../schema.ts";

/** What a projection knows of an event: all but what the append assigns (sequence, hashes, recorded time). */
export type ProjectedEvent = Pick<
  StoredEvent,
  "tenantId" | "streamType" | "streamId" | "streamVersion" | "eventId" | "type" | "data" | "metadata" | "occurredAt"
>;

/** A write, built (statementBuilder) but not executed: the append runs it inside its own statement. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ProjectionWrite = InsertQueryBuilder<Database, any, any> | UpdateQueryBuilder<Database, any, any, any> | DeleteQueryBuilder<Database, any, any>;

/**
 * A read model: the tables it owns and the writes one event makes to them. Deterministic, and writes
 * only: no read before a write, so the append can run them inside its one statement (projectionSql.ts).
 */
export interface Projection {
  name: string;
  tables: ProjectedTable[];
  handles: ReadonlySet<string>;
  project(event: ProjectedEvent): ProjectionWrite[];
  /**
   * For a read model that spans tenants: a rebuild replays tenant by tenant (there is no order across
   * tenants), so instead of replaying it, the rebuild derives it from the other rebuilt tables.
   */
  deriveAfterReplay?(trx: Tx): Promise<void>;
}
