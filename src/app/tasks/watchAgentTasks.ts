import type { Actor } from "../../auth/actor.ts";
import { withTenant } from "../../store/db.ts";
import { agentIdOf } from "../agents/agentPrincipal.ts";
import type { AppDeps } from "../deps.ts";
import { abortableStream, Bell } from "../../runtime/abortableStream.ts";
import { taskNotifier } from "./taskNotifier.ts";
import type { TimeIdPosition } from "../../store/queries/keysetPage.ts";
import { dispatchedSince, lastDispatchSequence, pendingTasksAmong, pendingTasksOf, type TaskRow } from "../../store/queries/taskQueries.ts";

/** How often a subscription looks for tasks dispatched by other Keyplane processes. */
export const AGENT_TASKS_POLL_MS = 2000;
const PAGE = 100;

type Deps = Pick<AppDeps, "db" | "now" | "logger">;

/**
 * The tasks an agent is to work on, for the agentTasks subscription: first every task still pending
 * for it (oldest first), then each task dispatched to it afterwards, each once. Never another agent's.
 *
 * New dispatches are read from the tenant's log by sequence (visible in commit order, so none is
 * skipped), woken at once by a dispatch in this process and otherwise every pollMs. A task that is no
 * longer pending when it is read (claimed through pendingTasks, timed out) is not sent.
 *
 * The iterator's return() (the client went away, the server closes) stops it at once, also while it
 * waits for the next poll. Throws FORBIDDEN at once for anyone but an enrolled agent.
 */
export function watchAgentTasks(deps: Deps, actor: Actor, options: { pollMs?: number } = {}): AsyncGenerator<TaskRow, void, undefined> {
  const agentId = agentIdOf(actor);
  return abortableStream((signal) => watch(deps, actor.tenantId, agentId, signal, options.pollMs ?? AGENT_TASKS_POLL_MS));
}

async function* watch(deps: Deps, tenantId: string, agentId: string, signal: AbortSignal, pollMs: number): AsyncGenerator<TaskRow, void, undefined> {
  const bell = new Bell(signal);
  const unsubscribe = taskNotifier(deps.db).subscribe(tenantId, agentId, () => bell.ring());
  try {
    // Where the log stands before the pending tasks are read: later dispatches come from the log.
    let cursor = await withTenant(deps.db, tenantId, (trx) => lastDispatchSequence(trx, tenantId));
    // Tasks sent from the pending list that the log may show again (dispatched while it was read).
    const sentFirst = new Set<string>();
    let after: TimeIdPosition | undefined;
    for (;;) {
      const page = await withTenant(deps.db, tenantId, (trx) => pendingTasksOf(trx, tenantId, agentId, { first: PAGE, after, now: deps.now() }));
      for (const task of page.rows) {
        if (signal.aborted) return;
        sentFirst.add(task.task_id);
        yield task;
      }
      if (!page.hasNextPage) break;
      const last = page.rows[page.rows.length - 1]!;
      after = [new Date(last.dispatched_at), last.task_id];
    }

    let caughtUp = false;
    while (!signal.aborted) {
      let found: { last: number | undefined; full: boolean; tasks: TaskRow[] };
      try {
        found = await withTenant(deps.db, tenantId, async (trx) => {
          const dispatched = await dispatchedSince(trx, tenantId, cursor, PAGE);
          const mine = dispatched.filter((d) => d.agentId === agentId).map((d) => d.taskId);
          const pending = await pendingTasksAmong(trx, tenantId, agentId, mine, deps.now());
          const byId = new Map(pending.map((t) => [t.task_id, t]));
          return { last: dispatched[dispatched.length - 1]?.sequence, full: dispatched.length === PAGE, tasks: mine.flatMap((id) => byId.get(id) ?? []) };
        });
      } catch (error) {
        if (signal.aborted) return;
        deps.logger.warn({ err: error, tenantId, agentId }, "agentTasks: reading new tasks failed; trying again at the next poll");
        await bell.wait(pollMs);
        continue;
      }
      if (found.last !== undefined) cursor = found.last;
      for (const task of found.tasks) {
        if (signal.aborted) return;
        if (!sentFirst.has(task.task_id)) yield task;
      }
      if (found.full) continue;
      if (!caughtUp) {
        // The log has now been read past everything the pending list could have shown.
        sentFirst.clear();
        caughtUp = true;
      }
      await bell.wait(pollMs);
    }
  } finally {
    unsubscribe();
  }
}
