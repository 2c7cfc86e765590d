/**
 * The clients of bench:reads, in a worker thread of their own so that their work (sending requests,
 * reading answers) does not run on the servers' event loop. Plain JavaScript: a worker thread does
 * not inherit tsx's loader.
 *
 * In: { url, init, count, clients }: `count` requests from `clients` concurrent loops, each sending
 * its next request when the previous one is answered (keep-alive); any answer but a 200 without
 * errors fails the run. Out: { rate, seconds, p50, p99 } (requests/s, ms) or { error }.
 */
import { parentPort } from "node:worker_threads";
import { performance } from "node:perf_hooks";

parentPort.on("message", async ({ url, init, count, clients }) => {
  try {
    const latencies = new Float64Array(count);
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(clients, count) }, async () => {
        while (next < count) {
          const i = next++;
          const sent = performance.now();
          const res = await fetch(url, init);
          const text = await res.text();
          if (res.status !== 200 || text.includes('"errors"')) throw new Error(`HTTP ${res.status} ${text.slice(0, 500)}`);
          latencies[i] = performance.now() - sent;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort();
    const at = (q) => latencies[Math.min(count - 1, Math.floor(q * count))];
    parentPort.postMessage({ rate: count / seconds, seconds, p50: at(0.5), p99: at(0.99) });
  } catch (error) {
    parentPort.postMessage({ error: String(error?.message ?? error) });
  }
});
