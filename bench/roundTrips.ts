import { setTimeout as sleep } from "node:timers/promises";
import type { Metrics } from "../src/metrics.ts";
import { meterRoundTrips } from "../src/store/roundTrips.ts";

// Database round trips as the store itself counts them (src/store/roundTrips.ts): every message sent
// to the database and waited on, BEGIN and COMMIT included, on PostgreSQL, Citus and PGlite alike.

/** The round trips `fn` made, counted by the store's meter around it. */
export async function roundTripsOf(fn: () => Promise<unknown>): Promise<number> {
  const meter = { count: 0 };
  await meterRoundTrips(meter, fn);
  return meter.count;
}

/**
 * Mean round trips per request of `n` sequential `request`s to a Keyplane's /graphql, as the server
 * counts them (the histogram keyplane_http_db_round_trips, read in-process before and after), after 3
 * uncounted ones: steady state (the credential cache forgets a token left idle for a second or so, and
 * re-reads it on its next use). Nothing else may reach that Keyplane's /graphql meanwhile.
 */
export async function roundTripsPerRequest(metrics: Metrics, n: number, request: () => Promise<unknown>): Promise<number> {
  const read = async () => {
    const { values } = await metrics.httpDbRoundTrips.get();
    const total = (suffix: string) =>
      values.filter((v) => v.labels.route === "/graphql" && v.metricName?.endsWith(suffix)).reduce((sum, v) => sum + v.value, 0);
    return { sum: total("_sum"), count: total("_count") };
  };
  for (let i = 0; i < 3; i++) await request();
  const before = await read();
  for (let i = 0; i < n; i++) await request();
  // A request is observed when its response has finished, which the client may see a moment before.
  let after = await read();
  for (let tries = 0; after.count < before.count + n && tries < 100; tries++) {
    await sleep(10);
    after = await read();
  }
  if (after.count !== before.count + n) throw new Error(`round trips: ${after.count - before.count} requests were counted, expected ${n}`);
  return (after.sum - before.sum) / n;
}
