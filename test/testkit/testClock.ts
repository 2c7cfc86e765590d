/**
 * A clock for Keyplane under test (createTestApp's `now`, createKeyplane's `now` option): the real
 * time plus an offset that only grows. Time flows as usual, and a test that needs time to pass (a
 * state, a token or an agent's silence getting old) advances it instead of sleeping. Two apps given
 * the same clock (two processes on one database) see the same time.
 */
export interface TestClock {
  /** The clock's time: pass as `now` (a bound function). */
  now: () => Date;
  /** Moves the clock ms forward. */
  advance(ms: number): void;
  /** Moves the clock forward to `at` (no-op when it is already past it). */
  advanceTo(at: Date | number): void;
}

export function testClock(): TestClock {
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  return {
    now,
    advance(ms) {
      if (!(ms >= 0)) throw new Error(`a test clock only moves forward (advance(${ms}))`);
      offset += ms;
    },
    advanceTo(at) {
      const ms = (typeof at === "number" ? at : at.getTime()) - now().getTime();
      if (ms > 0) offset += ms;
    },
  };
}
