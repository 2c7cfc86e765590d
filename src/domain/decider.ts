import type { DomainEvent } from "./eventDefinition.ts";

/**
 * The rules of one stream as three pure functions (emmett's Decider): a stream's state is its events
 * folded with `evolve` from `initialState()`, and `decide` turns a command on that state into the
 * events to append, or throws a DomainError. Nothing here reads or writes: app/handleCommand.ts does.
 */
export interface Decider<S, C, E extends DomainEvent> {
  initialState: () => S;
  evolve: (state: S, event: E) => S;
  decide: (command: C, state: S) => E[];
}

/** Where a decider's events live: one stream per aggregate, named by its type and its id. */
export interface StreamName {
  streamType: string;
  streamId: string;
}
