import { Repeater } from "graphql-yoga";
import { BadInputError } from "../../errors.ts";
import { builder } from "../builder.ts";

export const TICKS_MAX_COUNT = 100;
export const TICKS_MIN_INTERVAL_MS = 10;
export const TICKS_MAX_INTERVAL_MS = 1000;

/**
 * A subscription that needs nothing but a valid token: clients use it to check that their
 * subscription transport (WebSocket or SSE) works end to end.
 */
builder.subscriptionField("ticks", (t) =>
  t.int({
    description: `Counts 1, 2, … up to \`count\` (1-${TICKS_MAX_COUNT}), the first at once and then one every \`intervalMs\` milliseconds (${TICKS_MIN_INTERVAL_MS}-${TICKS_MAX_INTERVAL_MS}), and ends. A health check for subscription clients.`,
    authScopes: { authenticated: true },
    args: {
      count: t.arg.int({ required: true }),
      intervalMs: t.arg.int({ required: true }),
    },
    subscribe: (_root, { count, intervalMs }) => {
      if (count < 1 || count > TICKS_MAX_COUNT) throw new BadInputError(`count must be between 1 and ${TICKS_MAX_COUNT}`, "count");
      if (intervalMs < TICKS_MIN_INTERVAL_MS || intervalMs > TICKS_MAX_INTERVAL_MS) {
        throw new BadInputError(`intervalMs must be between ${TICKS_MIN_INTERVAL_MS} and ${TICKS_MAX_INTERVAL_MS}`, "intervalMs");
      }
      return ticks(count, intervalMs);
    },
    resolve: (tick) => tick,
  }),
);

/** 1..count; a client that leaves (or a server that shuts down) stops it at once, not after the next interval. */
function ticks(count: number, intervalMs: number): AsyncIterable<number> {
  return new Repeater<number>(async (push, stop) => {
    let stopped = false;
    void stop.then(() => (stopped = true));
    for (let tick = 1; tick <= count && !stopped; tick++) {
      if (tick > 1) {
        const elapsed = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), intervalMs);
          void stop.then(() => {
            clearTimeout(timer);
            resolve(false);
          });
        });
        if (!elapsed) return;
      }
      await push(tick);
    }
    stop();
  });
}
