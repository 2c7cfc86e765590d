import type { DomainEvent } from "../domain/eventDefinition.ts";
import { withTenant, type Db } from "../store/db.ts";
import { appendEvents } from "../store/events/appendEvents.ts";
import { readStream } from "../store/events/readStream.ts";
import type { EventMetadata, StoredEvent } from "../store/events/types.ts";

export interface Decider<S, C, E extends DomainEvent> {
  initialState: () => S;
  evolve: (state: S, event: E) => S;
  decide: (command: C, state: S) => E[];
}

/**
 * Load -> decide -> append, in one tenant transaction: the stream's state is folded from its events,
 * the pure decider turns the command into events, and the append checks the version it decided on.
 * A decider that throws leaves nothing behind.
 */
export async function handleCommand<S, C, E extends DomainEvent>(
  db: Db,
  args: { tenantId: string; streamType: string; streamId: string; decider: Decider<S, C, E>; command: C; metadata: EventMetadata },
): Promise<{ state: S; decided: E[]; stored: StoredEvent[] }> {
  const { tenantId, streamType, streamId, decider, command, metadata } = args;
  return withTenant(db, tenantId, async (trx) => {
    const stream = await readStream(trx, tenantId, streamType, streamId);
    const state = (stream.events as E[]).reduce(decider.evolve, decider.initialState());
    const decided = decider.decide(command, state);
    const stored = await appendEvents(trx, { tenantId, streamType, streamId, expectedVersion: stream.version, events: decided, metadata });
    return { state: decided.reduce(decider.evolve, state), decided, stored };
  });
}
