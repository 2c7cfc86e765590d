import { performance } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
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
  await createTenant({ db: handle.db }, systemActor("p"), { id: "t1", name: "t1", tier: "free" });
  const metadata = eventMetadata(systemActor("p"), { requestId: "r" });
  const ev = () => AccessTokenIssued({ tokenId: randomUUID(), subject: "svc:b", kind: "service", roles: ["service"], scopes: ["credentials:read"], expiresAt: new Date(Date.now() + 3600e3).toISOString(), issuedVia: "api" });
  appendQueue(handle.db).groupCommit = false;
  const N = Number(process.env.N ?? 1000);
  for (let i = 0; i < 200; i++) await appendEvents(handle.db, { tenantId: "t1", streamType: "access_token", streamId: randomUUID(), expectedVersion: 0, events: [ev()], metadata });
  let t = performance.now();
  for (let i = 0; i < N; i++) await appendEvents(handle.db, { tenantId: "t1", streamType: "access_token", streamId: randomUUID(), expectedVersion: 0, events: [ev()], metadata });
  console.log("sequential lone append ms", ((performance.now() - t) / N).toFixed(3));
  t = performance.now();
  for (let i = 0; i < N; i++) await sql`insert into tenants_probe_x select 1 where false`.execute(handle.db).catch(() => {});
  await sql`create table if not exists plain_probe (id serial primary key, v text)`.execute(handle.db);
  t = performance.now();
  for (let i = 0; i < N; i++) await sql`insert into plain_probe (v) values (${"x".repeat(300)})`.execute(handle.db);
  console.log("sequential plain insert ms", ((performance.now() - t) / N).toFixed(3));
  const { appendCall } = await import("../src/store/events/appendQueue.ts");
  const { projectionStatements } = await import("../src/store/projections/applyProjections.ts");
  const { contentHash, genesisHash } = await import("../src/store/events/hashing.ts");
  const calls = Array.from({ length: N }, () => {
    const e = ev(); const eventId = randomUUID(); const occurredAt = new Date().toISOString(); const streamId = randomUUID();
    const ch = contentHash({ eventId, tenantId: "t1", streamType: "access_token", streamId, streamVersion: 1, type: e.type, schemaVersion: 1, data: e.data, metadata, occurredAt });
    const st = projectionStatements([{ tenantId: "t1", streamType: "access_token", streamId, streamVersion: 1, eventId, type: e.type, data: e.data as any, metadata, occurredAt }]);
    return { tenant: "t1", stream_type: "access_token", stream_id: streamId, expected_version: 0, genesis: genesisHash("t1"), occurred_at: occurredAt, metadata, events: [{ event_id: eventId, event_type: e.type, schema_version: 1, data: e.data, content_hash: ch }], projections: st.map((x) => x.sql) };
  });
  t = performance.now();
  for (const c of calls) await appendCall(handle.db, c);
  console.log("sequential appendCall only ms", ((performance.now() - t) / N).toFixed(3));
  t = performance.now();
  for (let i = 0; i < N; i++) {
    const e = ev(); const eventId = randomUUID(); const occurredAt = new Date().toISOString(); const streamId = randomUUID();
    contentHash({ eventId, tenantId: "t1", streamType: "access_token", streamId, streamVersion: 1, type: e.type, schemaVersion: 1, data: e.data, metadata, occurredAt });
    projectionStatements([{ tenantId: "t1", streamType: "access_token", streamId, streamVersion: 1, eventId, type: e.type, data: e.data as any, metadata, occurredAt }]);
  }
  console.log("node prep only ms", ((performance.now() - t) / N).toFixed(3));
} finally {
  await handle.close();
  if (!process.env.KEEP) await scratch.drop(); else console.log(scratch.url);
}
