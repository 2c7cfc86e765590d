import { describe, expect, it } from "vitest";
import type { Decider } from "../../src/domain/decider.ts";
import { ConflictError, NotFoundError } from "../../src/errors.ts";
import { deciderSpec } from "../testkit/deciderSpec.ts";

// The helper every decider spec stands on must fail when the decision differs: a spec that cannot
// fail proves nothing. A counter that opens once and counts up to a limit is enough to show it.

type Event = { type: "counter.opened"; data: { limit: number } } | { type: "counter.counted"; data: { count: number } };
type Command = { type: "Open"; limit: number } | { type: "Count" };
type State = { open: false } | { open: true; limit: number; count: number };

class LimitReached extends ConflictError {
  constructor(limit: number) {
    super(`at the limit of ${limit}`, { limit });
  }
}

const counter: Decider<State, Command, Event> = {
  initialState: () => ({ open: false }),
  evolve: (state, event) =>
    event.type === "counter.opened" ? { open: true, limit: event.data.limit, count: 0 } : state.open ? { ...state, count: event.data.count } : state,
  decide: (command, state) => {
    if (command.type === "Open") return state.open ? [] : [{ type: "counter.opened", data: { limit: command.limit } }];
    if (!state.open) throw new NotFoundError("counter");
    if (state.count >= state.limit) throw new LimitReached(state.limit);
    return [{ type: "counter.counted", data: { count: state.count + 1 } }];
  },
};

const given = deciderSpec(counter);
const opened: Event = { type: "counter.opened", data: { limit: 2 } };
const counted = (count: number): Event => ({ type: "counter.counted", data: { count } });

describe("deciderSpec", () => {
  it("decides on the state folded from the given events", () => {
    given([opened])
      .when({ type: "Count" })
      .then([counted(1)]);
    given([opened, counted(1)])
      .when({ type: "Count" })
      .then([counted(2)]);
    given([opened]).when({ type: "Open", limit: 5 }).thenNothingHappened();
  });

  it("fails when other events, more events or none are decided", () => {
    expect(() =>
      given([opened])
        .when({ type: "Count" })
        .then([counted(2)]),
    ).toThrow();
    expect(() =>
      given([opened])
        .when({ type: "Count" })
        .then([counted(1), counted(1)]),
    ).toThrow();
    expect(() => given([opened]).when({ type: "Count" }).thenNothingHappened()).toThrow();
    expect(() => given([opened]).when({ type: "Open", limit: 5 }).then([opened])).toThrow();
  });

  it("checks a refusal's code, message, class and extensions", () => {
    const atLimit = given([opened, counted(1), counted(2)]).when({ type: "Count" });
    atLimit.thenThrows("CONFLICT", { message: "at the limit of 2", instanceOf: LimitReached, extensions: { limit: 2 } });
    atLimit.thenThrows("CONFLICT", { message: /limit/ });
    expect(() => atLimit.thenThrows("NOT_FOUND")).toThrow();
    expect(() => atLimit.thenThrows("CONFLICT", { message: "at the limit" })).toThrow();
    expect(() => atLimit.thenThrows("CONFLICT", { message: /^limit/ })).toThrow();
    expect(() => atLimit.thenThrows("CONFLICT", { extensions: { limit: 3 } })).toThrow();
    expect(() => given([]).when({ type: "Count" }).thenThrows("NOT_FOUND", { instanceOf: LimitReached })).toThrow();
  });

  it("fails when the command is accepted, or refused with something that is not a DomainError", () => {
    expect(() => given([opened]).when({ type: "Count" }).thenThrows("CONFLICT")).toThrow(
      /should have been refused with CONFLICT; it decided \[\{"type":"counter.counted"/,
    );
    const broken = deciderSpec<State, Command, Event>({
      ...counter,
      decide: () => {
        throw new Error("bug");
      },
    });
    expect(() => broken([]).when({ type: "Count" }).thenThrows("NOT_FOUND")).toThrow();
  });
});
