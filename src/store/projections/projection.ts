import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import type { ProjectedTable } from "../schema.ts";

/** A read model: the tables it owns and how one event changes them. Must be deterministic. */
export interface Projection {
  name: string;
  tables: ProjectedTable[];
  handles: ReadonlySet<string>;
  apply(trx: Tx, event: StoredEvent): Promise<void>;
}
