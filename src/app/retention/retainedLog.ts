import { PrunedError } from "../../errors.ts";
import type { Tx } from "../../store/db.ts";
import { readPrunedPrefix, type PrunedPrefix } from "../../store/retention/prunedPrefix.ts";

/** What a reader of the log asked for: a sequence it wants (the first, or the last) or a time. */
export interface AskedOf {
  what: string;
  sequence?: number | null;
  since?: Date | null;
}

/**
 * Where a reader of the tenant's log may start: null when nothing was pruned, else the pruned prefix
 * (the log starts after its anchor). A reader asking for a pruned sequence or for a time at or before
 * the last pruned event gets PRUNED naming the first sequence kept and the anchor, rather than a
 * silently shorter answer.
 */
export async function retainedStart(trx: Tx, tenantId: string, ...asked: AskedOf[]): Promise<PrunedPrefix | null> {
  const prefix = await readPrunedPrefix(trx, tenantId);
  if (prefix) for (const ask of asked) refusePruned(prefix, ask);
  return prefix;
}

/** PRUNED when what was asked lies in the pruned prefix. */
export function refusePruned(prefix: PrunedPrefix | null, asked: AskedOf): void {
  if (!prefix) return;
  if (asked.sequence != null && asked.sequence <= prefix.throughSequence) throw new PrunedError(asked.what, prefix);
  if (asked.since != null && asked.since.getTime() <= prefix.lastOccurredAt.getTime()) throw new PrunedError(asked.what, prefix);
}
