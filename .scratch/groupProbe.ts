import { performance } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import { createTenant } from "../src/app/tenants.ts";
import { eventMetadata, systemActor } from "../src/auth/actor.ts";
import { AccessTokenIssued } from "../src/domain/session/events.ts";
import { openDatabase } from "../src/store/db.ts";
import { appendEvents } from "../src/store/events/appendEvents.ts";
import { appendQueue } from "../src/store/events/appendQueue.ts";
import { migrateToLatest } from "../src/store/migrate.ts";
import { createBenchDatabase } from "../bench/benchDatabase.ts";

const scratch = await createBenchDatabase("probe", "postgres://postgres@127.0.0.1:5432/test");
const handle = await openDatabase({ url: scratch.url, poolMax: 10 });
try {
  await migrateToLatest(handle);
  const T = 100;
  for (let i = 0; i < T; i++) await createTenant({ db: handle.db }, systemActor("p"), { id: `t${i}`, name: "t", tier: "free" });
  const metadata = eventMetadata(systemActor("p"), { requestId: "r" });
  const ev = () => AccessTokenIssued({ tokenId: randomUUID(), subject: "svc:b", kind: "service", roles: ["service"], scopes: ["credentials:read"], expiresAt: new Date(Date.now() + 3600e3).toISOString(), issuedVia: "api" });
  appendQueue(handle.db).groupCommit = process.env.GC !== "0";
  const N = Number(process.env.N ?? 5000);
  const hot = process.env.HOT === "1";
  let next = 0;
  const run = async (n: number) => { next = 0; await Promise.all(Array.from({ length: 8 }, async () => { for (let i = next++; i < n; i = next++) await appendEvents(handle.db, { tenantId: hot ? "t0" : `t${i % T}`, streamType: "access_token", streamId: randomUUID(), expectedVersion: 0, events: [ev()], metadata }); })); };
  await run(500);
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  await run(N);
  const ms = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  console.log("batches", (globalThis as any).kpBatches, "appends", (globalThis as any).kpAppends);
  const t2 = performance.now(); let k = 0;
  const { appendQueue: q } = await import("../src/store/events/appendQueue.ts");
  console.log(`${(N / ms * 1000).toFixed(0)}/s; node cpu ${(((cpu.user + cpu.system) / 1000) / N).toFixed(3)} ms/append; wall ${(ms / N).toFixed(3)} ms/append`);
} finally {
  await handle.close();
  if (!process.env.KEEP) await scratch.drop(); else console.log(scratch.url);
}
