import type { Tx } from "../db.ts";
import type { StoredEvent } from "../events/types.ts";
import type { ProjectedTable } from "../schema.ts";

/** A read model: the tables it owns and how one event changes them. Must be deterministic. */
export interface Projection {
  name: string;
  tables: ProjectedTable[];
  handles: ReadonlySet<string>;
  apply(trx: Tx, event: StoredEvent): Promise<void>;
  /**
   * For a read model that spans tenants: a rebuild replays tenant by tenant (there is no order across
   * tenants), so instead of replaying it, the rebuild derives it from the other rebuilt tables.
   */
  deriveAfterReplay?(trx: Tx): Promise<void>;
}
