/**
 * The subscribers of bench:fanout, in a worker thread of their own so that the clients' work does
 * not count as the server's. Receipts carry wall-clock times with sub-millisecond precision
 * (performance.timeOrigin + now), comparable with the main thread's commit times.
 */
import { parentPort } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

// Messages: in { type: "subscribe", wsUrls, tenants: [{ id, token }], perTenant } | { type: "collect", expected };
// a tenant's subscribers are spread over the servers of wsUrls in turn.
// out { type: "ready" } | { type: "receipts", receipts: [tenantId, sequence, at][], crossTenant, failures }.
// Plain JavaScript: a worker thread does not inherit tsx's loader.

const now = () => performance.timeOrigin + performance.now();
let clients = [];
let receipts = [];
let crossTenant = 0;
let failures = 0;

parentPort.on("message", async (message) => {
  if (message.type === "subscribe") {
    clients = [];
    receipts = [];
    crossTenant = 0;
    failures = 0;
    let ready = 0;
    const all = message.tenants.length * message.perTenant;
    await new Promise((resolve) => {
      for (const tenant of message.tenants) {
        for (let i = 0; i < message.perTenant; i++) {
          const client = createClient({
            url: message.wsUrls[i % message.wsUrls.length],
            webSocketImpl: WebSocket,
            connectionParams: { authorization: `Bearer ${tenant.token}` },
            retryAttempts: 0,
          });
          clients.push(client);
          client.on("connected", () => {
            if (++ready === all) resolve();
          });
          client.subscribe(
            { query: 'subscription { tenantEvents(types: ["access.denied"]) { sequence data } }' },
            {
              next: ({ data }) => {
                const at = now();
                const event = data.tenantEvents;
                if (event.data.reason !== tenant.id) crossTenant++;
                receipts.push([tenant.id, event.sequence, at]);
              },
              error: () => failures++,
              complete: () => {},
            },
          );
        }
      }
    });
    // Each subscription starts at its tenant's head once that is read: let them all get there.
    await new Promise((r) => setTimeout(r, 1000));
    parentPort.postMessage({ type: "ready" });
  } else {
    const deadline = Date.now() + 10_000;
    while (receipts.length < message.expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(clients.map((c) => c.dispose()));
    parentPort.postMessage({ type: "receipts", receipts, crossTenant, failures });
  }
});
