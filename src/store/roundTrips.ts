import { AsyncLocalStorage } from "node:async_hooks";

// Database round trips, counted per unit of work (an HTTP request, a benchmark's operation): every
// message the store sends to the database and waits on, BEGIN and COMMIT included, is one. Counted
// by the dialect wrapper (ambientTransaction.ts), so no query can go uncounted.

const meters = new AsyncLocalStorage<RoundTripMeter>();

export interface RoundTripMeter {
  count: number;
}

/** Runs fn, counting into `meter` every round trip made on its behalf (across async continuations). */
export function meterRoundTrips<T>(meter: RoundTripMeter, fn: () => T): T {
  return meters.run(meter, fn);
}

/** Called for each message sent to the database. */
export function countRoundTrip(): void {
  const meter = meters.getStore();
  if (meter) meter.count++;
}
