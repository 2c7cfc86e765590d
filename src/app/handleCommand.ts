import type { DomainEvent } from "../domain/eventDefinition.ts";
import { withTenant, type Db, type Tx } from "../store/db.ts";
import { appendEvents } from "../store/events/appendEvents.ts";
import { readStream } from "../store/events/readStream.ts";
import type { EventMetadata, StoredEvent } from "../store/events/types.ts";

export interface Decider<S, C, E extends DomainEvent> {
  initialState: () => S;
  evolve: (state: S, event: E) => S;
  decide: (command: C, state: S) => E[];
}

type CommandArgs<S, C, E extends DomainEvent> = {
  tenantId: string;
  streamType: string;
  streamId: string;
  decider: Decider<S, C, E>;
  command: C;
  metadata: EventMetadata;
  /** The stream id was just generated (a random UUID): nothing to read, and the append checks it is still empty. */
  newStream?: boolean;
};
type CommandResult<S, E> = { state: S; decided: E[]; stored: StoredEvent[] };

/**
 * Load -> decide -> append, in one tenant transaction: the stream's state is folded from its events,
 * the pure decider turns the command into events, and the append checks the version it decided on.
 * A decider that throws leaves nothing behind.
 */
export function handleCommand<S, C, E extends DomainEvent>(db: Db, args: CommandArgs<S, C, E>): Promise<CommandResult<S, E>> {
  return withTenant(db, args.tenantId, (trx) => decideAndAppend(trx, args));
}

/** The same step inside a tenant transaction the caller holds (to write beside it, e.g. the credential vault). */
export async function decideAndAppend<S, C, E extends DomainEvent>(trx: Tx, args: CommandArgs<S, C, E>): Promise<CommandResult<S, E>> {
  const { tenantId, streamType, streamId, decider, command, metadata } = args;
  const stream = args.newStream ? { version: 0, events: [] } : await readStream(trx, tenantId, streamType, streamId);
  const state = (stream.events as E[]).reduce(decider.evolve, decider.initialState());
  const decided = decider.decide(command, state);
  const stored = await appendEvents(trx, { tenantId, streamType, streamId, expectedVersion: stream.version, events: decided, metadata });
  return { state: decided.reduce(decider.evolve, state), decided, stored };
}
