import type { Decider } from "../domain/decider.ts";
import type { DomainEvent } from "../domain/eventDefinition.ts";
import { withTenant, type Db, type Tx } from "../store/db.ts";
import { appendEvents } from "../store/events/appendEvents.ts";
import { readStream, type LoadedStream } from "../store/events/readStream.ts";
import type { EventMetadata, StoredEvent } from "../store/events/types.ts";

type CommandArgs<S, C, E extends DomainEvent> = {
  tenantId: string;
  streamType: string;
  streamId: string;
  decider: Decider<S, C, E>;
  command: C;
  metadata: EventMetadata;
  /** When the command happened, by the use case's clock (deps.now): the events' occurredAt. */
  occurredAt: Date;
  /** The stream id was just generated (a random UUID): nothing to read, and the append checks it is still empty. */
  newStream?: boolean;
};
type CommandResult<S, E> = { state: S; decided: E[]; stored: StoredEvent[] };

/**
 * Load -> decide -> append: the stream's state is folded from its events, the pure decider turns the
 * command into events, and the append, one statement committing on its own, checks the version it
 * decided on (optimistic: a concurrent change answers a conflict). A decider that throws leaves
 * nothing behind.
 */
export async function handleCommand<S, C, E extends DomainEvent>(db: Db, args: CommandArgs<S, C, E>): Promise<CommandResult<S, E>> {
  const { tenantId, streamType, streamId } = args;
  const stream = args.newStream ? NEW_STREAM : await withTenant(db, tenantId, (trx) => readStream(trx, tenantId, streamType, streamId));
  return decideThenAppend(db, args, stream);
}

/** The same step inside a tenant transaction the caller holds (to write beside it, e.g. the credential vault). */
export async function decideAndAppend<S, C, E extends DomainEvent>(trx: Tx, args: CommandArgs<S, C, E>): Promise<CommandResult<S, E>> {
  const { tenantId, streamType, streamId } = args;
  return decideThenAppend(trx, args, args.newStream ? NEW_STREAM : await readStream(trx, tenantId, streamType, streamId));
}

const NEW_STREAM: LoadedStream = { version: 0, events: [] };

async function decideThenAppend<S, C, E extends DomainEvent>(target: Db | Tx, args: CommandArgs<S, C, E>, stream: LoadedStream): Promise<CommandResult<S, E>> {
  const { tenantId, streamType, streamId, decider, command, metadata, occurredAt } = args;
  // Where retention pruned the stream's first events, its snapshot is the state they left.
  const initial = stream.snapshot ? (stream.snapshot.state as S) : decider.initialState();
  const state = (stream.events as E[]).reduce(decider.evolve, initial);
  const decided = decider.decide(command, state);
  const stored = await appendEvents(target, { tenantId, streamType, streamId, expectedVersion: stream.version, events: decided, metadata, occurredAt });
  return { state: decided.reduce(decider.evolve, state), decided, stored };
}
