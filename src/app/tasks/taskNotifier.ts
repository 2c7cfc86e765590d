type Listener = () => void;

/**
 * In-process wake-ups for agentTasks subscriptions: a dispatch committed in this process wakes the
 * subscriptions of its agent at once. They then read the log themselves, so a wake-up carries nothing
 * and a lost one costs at most one poll interval. Dispatches in other processes are found by that poll
 * (until LISTEN/NOTIFY carries the hint across processes).
 */
export class TaskNotifier {
  private readonly listeners = new Map<string, Set<Listener>>();

  subscribe(tenantId: string, agentId: string, listener: Listener): () => void {
    const key = keyOf(tenantId, agentId);
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(key) === set) this.listeners.delete(key);
    };
  }

  notify(tenantId: string, agentId: string): void {
    for (const listener of this.listeners.get(keyOf(tenantId, agentId)) ?? []) {
      try {
        listener();
      } catch {
        // A listener only rings a bell; nothing of the dispatch depends on it.
      }
    }
  }

  /** How many subscriptions of this agent are open in this process. */
  watching(tenantId: string, agentId: string): number {
    return this.listeners.get(keyOf(tenantId, agentId))?.size ?? 0;
  }
}

const keyOf = (tenantId: string, agentId: string) => `${tenantId}\u0000${agentId}`;

// Per Keyplane database handle, not per module: what commits through one handle wakes its subscribers.
const byDb = new WeakMap<object, TaskNotifier>();

export function taskNotifier(db: object): TaskNotifier {
  let notifier = byDb.get(db);
  if (!notifier) byDb.set(db, (notifier = new TaskNotifier()));
  return notifier;
}
