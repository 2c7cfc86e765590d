import { sql } from "kysely";
import type { Db, Tx } from "../db.ts";
import type { StatementJson } from "../projections/projectionSql.ts";

/** One append as keyplane_append_tenant (migrations/0013) takes it, with its tenant. */
export interface AppendCall {
  tenant: string;
  genesis: string;
  append: {
    stream_type: string;
    stream_id: string;
    expected_version: number;
    occurred_at: string;
    metadata: unknown;
    events: Array<{ event_id: string; event_type: string; schema_version: number; data: unknown; content_hash: string }>;
    /** Projection writes on the tenant's tables, as keyplane_execute takes them (projectionSql.ts). */
    projections: StatementJson[];
  };
}

/** What the function answers for one append: a version conflict, or the rows it wrote. */
export type AppendResult = { version: number } | { appended: Array<{ seq: number; recorded_at: string; chain_hash: string; version: number }> };

/** The append as one statement, in a transaction or on its own. The call alone in its SELECT: the form Citus delegates. */
export async function appendCall(db: Db | Tx, c: AppendCall): Promise<AppendResult> {
  const { rows } = await sql<{ result: AppendResult[] }>`
    select keyplane_append_tenant(${c.tenant}, ${c.genesis}, ${JSON.stringify([c.append])}::jsonb) as result`.execute(db);
  return rows[0]!.result[0]!;
}

/** Appends per batch statement at most: one WAL flush for all of them, and a bounded statement. */
const MAX_BATCH = 64;

interface Waiting {
  call: AppendCall;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/**
 * Group commit. An append on its own (not in a caller's transaction) is sent at once when nothing of
 * this process is being appended; appends arriving while a statement is in flight wait, and are sent
 * together, whatever their tenants, as one statement (keyplane_append_batch) when it returns: one
 * commit, one WAL flush for all. No timer: a lone append never waits. Each keeps its own outcome: a
 * version conflict is answered to that append only, and when a statement fails as a whole (a unique
 * violation in one projection, say) its appends are retried one by one, so only the faulty one fails.
 * On Citus, where each tenant's appends run on that tenant's node, there is one such queue per tenant
 * (keyplane_append_tenant, delegated), the tenants in parallel. Appends to one stream keep their order.
 */
export class AppendQueue {
  /** Waiting appends and whether a statement is in flight: one lane for all, or one per tenant on Citus. */
  private lanes = new Map<string, { waiting: Waiting[]; flushing: boolean }>();
  /** False once the database refused batches of several tenants (Citus). */
  private batches = true;
  /** Off: every append alone (benchmarks compare the two). */
  groupCommit = true;

  constructor(private readonly db: Db) {}

  append(call: AppendCall): Promise<AppendResult> {
    if (!this.groupCommit) return this.single(call);
    return new Promise<AppendResult>((resolve, reject) => this.enqueue({ call, resolve, reject }));
  }

  private enqueue(w: Waiting): void {
    const key = this.batches ? "" : w.call.tenant;
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { waiting: [], flushing: false }));
    lane.waiting.push(w);
    if (!lane.flushing) void this.flush(key, lane);
  }

  private async flush(key: string, lane: { waiting: Waiting[]; flushing: boolean }): Promise<void> {
    lane.flushing = true;
    try {
      while (lane.waiting.length > 0) {
        const batch = lane.waiting.splice(0, MAX_BATCH);
        if (batch.length === 1) await this.settle(batch[0]!);
        else if (key === "" && this.batches) await this.sendBatch(batch);
        else await this.sendTenant(batch);
      }
    } finally {
      lane.flushing = false;
      if (lane.waiting.length === 0 && this.lanes.get(key) === lane) this.lanes.delete(key);
    }
  }

  private async sendBatch(batch: Waiting[]): Promise<void> {
    // Grouped by tenant, each tenant's appends in arrival order.
    const tenants = new Map<string, { tenant: string; genesis: string; appends: AppendCall["append"][]; waiting: Waiting[] }>();
    for (const w of batch) {
      let group = tenants.get(w.call.tenant);
      if (!group) tenants.set(w.call.tenant, (group = { tenant: w.call.tenant, genesis: w.call.genesis, appends: [], waiting: [] }));
      group.appends.push(w.call.append);
      group.waiting.push(w);
    }
    const groups = [...tenants.values()];
    let results: Record<string, AppendResult[]>;
    try {
      const payload = JSON.stringify(groups.map(({ tenant, genesis, appends }) => ({ tenant, genesis, appends })));
      const { rows } = await sql<{ result: Record<string, AppendResult[]> }>`select keyplane_append_batch(${payload}::jsonb) as result`.execute(this.db);
      results = rows[0]!.result;
    } catch (error) {
      if ((error as { code?: string }).code === "KP001") {
        // Citus: from now on a lane per tenant; these go there, in order.
        this.batches = false;
        for (const w of batch) this.enqueue(w);
        return;
      }
      return this.oneByOne(batch);
    }
    groups.forEach((group, g) => group.waiting.forEach((w, i) => w.resolve(results[String(g)]![i]!)));
  }

  /** Appends of one tenant in one statement, which Citus runs on the tenant's node. */
  private async sendTenant(batch: Waiting[]): Promise<void> {
    const { tenant, genesis } = batch[0]!.call;
    let results: AppendResult[];
    try {
      const { rows } = await sql<{ result: AppendResult[] }>`
        select keyplane_append_tenant(${tenant}, ${genesis}, ${JSON.stringify(batch.map((w) => w.call.append))}::jsonb) as result`.execute(this.db);
      results = rows[0]!.result;
    } catch {
      return this.oneByOne(batch);
    }
    batch.forEach((w, i) => w.resolve(results[i]!));
  }

  /** Nothing of the statement was written: each append again, alone, in order, with its own outcome. */
  private async oneByOne(batch: Waiting[]): Promise<void> {
    for (const w of batch) await this.settle(w);
  }

  private async settle(w: Waiting): Promise<void> {
    try {
      w.resolve(await this.single(w.call));
    } catch (error) {
      w.reject(error);
    }
  }

  /** The append alone, now, in the caller's context (inside a unit of work's one transaction, it joins it). */
  single(call: AppendCall): Promise<AppendResult> {
    return appendCall(this.db, call);
  }
}

const queues = new WeakMap<Db, AppendQueue>();

/** The process's append queue for this database. */
export function appendQueue(db: Db): AppendQueue {
  let queue = queues.get(db);
  if (!queue) queues.set(db, (queue = new AppendQueue(db)));
  return queue;
}
