import { generateKeyPairSync, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { range, sequencesOf, subscribeEvents, type EventSubscriber } from "../testkit/eventSubscriber.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { serveProcess, type Served } from "../testkit/servedProcess.ts";
import { adminQuery, createScratchDatabase, type ScratchDatabase } from "../testkit/testDatabase.ts";

// Many processes, one log: two `keyplane serve` processes on one PostgreSQL database, a subscriber
// on each, events appended through both; every subscriber receives every event, in order, once.
// Then the LISTEN connection of one process is killed: its subscribers still get everything.

const scratch = scratchDirectory("keyplane-live-e2e-");
const fromStart = Buffer.from("seq:0").toString("base64url");

describe.skipIf(!process.env.TEST_DATABASE_URL)("live events across processes (PostgreSQL)", () => {
  let database: ScratchDatabase;
  let url: string;
  let a: Served;
  let b: Served;
  let token: string;
  const subscribers: EventSubscriber[] = [];

  beforeAll(async () => {
    database = await createScratchDatabase("kp_live_e2e");
    url = database.url;
    const shared = {
      DATABASE_URL: url,
      KEYPLANE_SIGNING_KEY: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      // Long enough that only NOTIFY can explain a prompt delivery, short enough for the lost-hint case.
      EVENT_FEED_POLL_MS: "3000",
    };
    a = await serveProcess("live-a", { ...shared, KEYPLANE_DATA_DIR: scratch.fresh(), KEYPLANE_MIGRATE_ON_START: "true" });
    b = await serveProcess("live-b", { ...shared, KEYPLANE_DATA_DIR: scratch.fresh() });
    token = a.adminToken();
  });
  afterAll(async () => {
    await Promise.all(subscribers.map((s) => s.dispose()));
    await Promise.all([a?.stop(), b?.stop()]);
    await database?.drop();
  });

  async function createKey(on: Served, description: string) {
    const res = await fetch(`${on.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: `mutation ($d: String) { createEnrollmentKey(input: { description: $d }) { id } }`, variables: { d: description } }),
    });
    const body = (await res.json()) as { errors?: unknown };
    expect(body.errors).toBeUndefined();
  }

  async function head(): Promise<number> {
    const { rows } = await adminQuery(database.adminUrl, "select coalesce(max(last_seq), 0)::int as n from tenant_heads where tenant_id = 'default'");
    return rows[0].n;
  }

  it("an event appended by either process reaches the subscribers of both, each once, in order", async () => {
    const onA = subscribeEvents(a.url, token, { after: fromStart });
    const onB = subscribeEvents(b.url, token, { after: fromStart });
    subscribers.push(onA, onB);
    await Promise.all([onA.connected, onB.connected]);
    for (let i = 0; i < 6; i++) {
      await createKey(i % 2 ? b : a, `key ${i}`);
      const appended = await head();
      // Each within a third of the fallback poll, six times running: only the NOTIFY hint explains it
      // (on Citus too, where the append runs on the worker and the hint leaves from the coordinator).
      const started = Date.now();
      await Promise.all([onA.until((e) => e.length >= appended, 1000), onB.until((e) => e.length >= appended, 1000)]);
      expect(Date.now() - started).toBeLessThan(1000);
    }
    const last = await head();
    expect(sequencesOf(onA.events)).toEqual(range(1, last));
    expect(sequencesOf(onB.events)).toEqual(range(1, last));
    expect(onA.events.filter((e) => e.type === "enrollment_key.created")).toHaveLength(6);
  });

  it("a lost LISTEN connection only delays: the process reconnects and its subscribers miss nothing", async () => {
    const onA = subscribeEvents(a.url, token, { after: fromStart });
    subscribers.push(onA);
    await onA.until((e) => e.length >= 1);
    const killed = await adminQuery(
      database.adminUrl,
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'LISTEN%'`,
    );
    expect(killed.rowCount).toBe(2);
    for (let i = 0; i < 4; i++) await createKey(b, `after-kill ${i}`);
    const last = await head();
    await onA.until((e) => e.length >= last, 15_000);
    expect(sequencesOf(onA.events)).toEqual(range(1, last));
    // And the connection is back: later events arrive through it.
    for (let i = 0; i < 2; i++) await createKey(b, `after-reconnect ${i}`);
    const later = await head();
    await onA.until((e) => e.length >= later, 15_000);
    expect(sequencesOf(onA.events)).toEqual(range(1, later));
    expect(a.output()).toMatch(/LISTEN connection lost/);
  });
});
