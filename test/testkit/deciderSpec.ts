import { expect } from "vitest";
import type { Decider } from "../../src/domain/decider.ts";
import type { DomainEvent } from "../../src/domain/eventDefinition.ts";
import { DomainError, type ErrorCode } from "../../src/errors.ts";

// Given the events of a stream, when a command is decided, then these events (or this error): a
// domain rule tested in milliseconds, without a database (emmett's DeciderSpecification).
//
//   const given = deciderSpec(taskDecider);
//   given([dispatched]).when(claim).then([claimed]);
//   given([dispatched, claimed]).when(claim).thenThrows("CONFLICT", { message: /task is claimed/ });

/** What a refusal must show besides its code (the code is what reaches the caller). */
export interface ExpectedRefusal {
  /** The exact message, or a pattern it matches. */
  message?: string | RegExp;
  /** A DomainError subclass the app layer tells apart (e.g. TaskTimedOutError). */
  instanceOf?: abstract new (
    ...args: never[]
  ) => DomainError;
  /** Extensions the error must carry (matched as a subset). */
  extensions?: Record<string, unknown>;
}

export interface DecisionSpec<E> {
  /** Exactly these events are decided, in this order. */
  then(expected: E[]): void;
  /** The command is accepted and changes nothing: no event (e.g. an idempotent repeat). */
  thenNothingHappened(): void;
  /** The command is refused with a DomainError of this code (and what `refusal` names). */
  thenThrows(code: ErrorCode, refusal?: ExpectedRefusal): void;
}

/** The state a decider folds from these events, as handleCommand folds a stream before deciding. */
export const stateAfter = <S, C, E extends DomainEvent>(decider: Decider<S, C, E>, events: E[]): S => events.reduce(decider.evolve, decider.initialState());

export function deciderSpec<S, C, E extends DomainEvent>(decider: Decider<S, C, E>) {
  return (given: E[]) => ({
    when(command: C): DecisionSpec<E> {
      // Folded on each assertion, so one `given` serves several `when`s without sharing state.
      const decide = () => decider.decide(command, stateAfter(decider, given));
      return {
        // biome-ignore lint/suspicious/noThenProperty: given/when/then is the spec's language (as emmett's); a spec is never awaited
        then: (expected) => expect(decide()).toEqual(expected),
        thenNothingHappened: () => expect(decide()).toEqual([]),
        thenThrows(code, refusal = {}) {
          let decided: E[] | undefined;
          let caught: unknown;
          try {
            decided = decide();
          } catch (error) {
            caught = error;
          }
          expect(caught, `the command should have been refused with ${code}; it decided ${JSON.stringify(decided)}`).toBeInstanceOf(DomainError);
          const error = caught as DomainError;
          expect(error.code, error.message).toBe(code);
          if (typeof refusal.message === "string") expect(error.message).toBe(refusal.message);
          else if (refusal.message) expect(error.message).toMatch(refusal.message);
          if (refusal.instanceOf) expect(error).toBeInstanceOf(refusal.instanceOf);
          if (refusal.extensions) expect(error.extensions).toMatchObject(refusal.extensions);
        },
      };
    },
  });
}
