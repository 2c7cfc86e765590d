import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { AccessTokenIssued, AccessTokenRevoked } from "../../src/domain/session/events.ts";
import type { DomainEvent } from "../../src/domain/eventDefinition.ts";
import { ConflictError } from "../../src/errors.ts";
import { withPlatform, withTenant, type DatabaseHandle } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { genesisHash } from "../../src/audit/hashing.ts";
import { rowToStoredEvent } from "../../src/store/events/rowToStoredEvent.ts";
import type { StoredEvent } from "../../src/store/events/types.ts";
import { eventRecordOf } from "../../src/store/audit/readLogRecords.ts";
import { verifyAuditRecords } from "../../src/audit/verifyAuditRecords.ts";
import { meterRoundTrips } from "../../src/store/roundTrips.ts";
import { createTestDatabase, onCitus, onPostgres } from "../testkit/testDatabase.ts";
import { waitFor } from "../testkit/waitFor.ts";

const metadata = eventMetadata(systemActor("event-store-test"), { requestId: "req-1" });

const tokenRevoked = (tokenId: string): DomainEvent =>
  AccessTokenRevoked({ tokenId, reason: "test", expiresAt: new Date(Date.now() + 3600_000).toISOString() });

const tokenIssued = (tokenId: string = randomUUID()): DomainEvent =>
  AccessTokenIssued({
    tokenId,
    subject: "svc",
    kind: "service",
    roles: ["service"],
    scopes: [],
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    issuedVia: "cli",
  });

/** The first problem the auditor's verifier finds re-computing the chain from the tenant's genesis. */
const firstProblem = async (log: StoredEvent[]) => {
  const tenantId = log[0]!.tenantId;
  const report = await verifyAuditRecords(log.map(eventRecordOf), {
    source: "log",
    tenantId,
    anchor: { type: "genesis", sequence: 0, chainHash: genesisHash(tenantId) },
  });
  return report.problem && { sequence: report.problem.sequence, kind: report.problem.kind };
};

describe("event store", () => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database.close());

  const append = (tenantId: string, streamId: string, expectedVersion: number | "any", events: DomainEvent[] = [tokenIssued(streamId)]) =>
    withTenant(database.db, tenantId, (trx) =>
      appendEvents(trx, { tenantId, streamType: "access_token", streamId, expectedVersion, events, metadata, occurredAt: new Date() }),
    );

  const logOf = (tenantId: string) =>
    withTenant(database.db, tenantId, (trx) => trx.selectFrom("events").selectAll().where("tenant_id", "=", tenantId).orderBy("tenant_seq").execute()).then(
      (rows) => rows.map(rowToStoredEvent),
    );

  it("gives each tenant a dense sequence and a hash chain an auditor can re-compute", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 5; i++) await append(tenant, randomUUID(), 0);
    await append(tenant, "multi", 0, [tokenIssued("multi"), tokenRevoked("multi")]);
    const log = await logOf(tenant);
    expect(log.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(log.slice(5).map((e) => [e.streamId, e.streamVersion])).toEqual([
      ["multi", 1],
      ["multi", 2],
    ]);
    expect(await firstProblem(log)).toBeNull();
    expect(log[0]!.metadata).toMatchObject({ actor: { subject: "event-store-test" }, requestId: "req-1" });
  });

  it("detects an altered event when re-computing the chain", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 3; i++) await append(tenant, randomUUID(), 0);
    const log = await logOf(tenant);
    const tampered = log.map((e) => (e.sequence === 2 ? { ...e, data: { ...e.data, subject: "mallory" } } : e));
    expect(await firstProblem(tampered)).toEqual({ sequence: 2, kind: "modified" });
    expect(await firstProblem([log[0]!, log[2]!])).toEqual({ sequence: 2, kind: "deleted" });
  });

  it("refuses UPDATE, DELETE and TRUNCATE of events in the database itself", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    await append(tenant, randomUUID(), 0);
    await expect(
      withPlatform(database.db, (trx) => trx.updateTable("events").set({ event_type: "x" }).where("tenant_id", "=", tenant).execute()),
    ).rejects.toThrow(/append-only/);
    await expect(withPlatform(database.db, (trx) => trx.deleteFrom("events").where("tenant_id", "=", tenant).execute())).rejects.toThrow(/append-only/);
    await expect(withPlatform(database.db, (trx) => sql`truncate events`.execute(trx))).rejects.toThrow(/append-only/);
    expect(await logOf(tenant)).toHaveLength(1);
  });

  it("lets exactly one of 20 parallel appends at the same expected version commit, every time", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    for (let round = 0; round < 5; round++) {
      const stream = randomUUID();
      await append(tenant, stream, 0);
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => append(tenant, stream, 1, [tokenRevoked(stream)])));
      const committed = results.filter((r) => r.status === "fulfilled");
      const conflicts = results.filter((r) => r.status === "rejected" && r.reason instanceof ConflictError);
      expect(committed).toHaveLength(1);
      expect(conflicts).toHaveLength(19);
    }
    const log = await logOf(tenant);
    expect(log.map((e) => e.sequence)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(await firstProblem(log)).toBeNull();
  });

  it("keeps sequences dense and the chain intact under concurrent appends to many streams and tenants", async () => {
    const tenants = [0, 1, 2].map(() => `t-${randomUUID().slice(0, 8)}`);
    await Promise.all(tenants.flatMap((t) => Array.from({ length: 15 }, () => append(t, randomUUID(), 0))));
    for (const t of tenants) {
      const log = await logOf(t);
      expect(log.map((e) => e.sequence)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
      expect(await firstProblem(log)).toBeNull();
    }
  });

  it("makes a later append wait for the tenant head, so sequences become visible in commit order", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    await append(tenant, randomUUID(), 0);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let firstSeq = 0;
    const first = withTenant(database.db, tenant, async (trx) => {
      const [e] = await appendEvents(trx, {
        tenantId: tenant,
        streamType: "access_token",
        streamId: "first",
        expectedVersion: 0,
        events: [tokenIssued("first")],
        metadata,
        occurredAt: new Date(),
      });
      firstSeq = e!.sequence;
      await gate;
    });
    await waitFor("the first append to hold the tenant head", () => firstSeq > 0);
    let secondDone = false;
    const second = append(tenant, "second", 0).then((events) => {
      secondDone = true;
      return events[0]!.sequence;
    });
    if (onPostgres) {
      // The second append's transaction is seen waiting on a lock (the head row the first one holds),
      // on Citus on the worker holding the tenant: citus_stat_activity sees every node.
      const activity = sql.raw(onCitus ? "citus_stat_activity" : "pg_stat_activity");
      await waitFor("the second append to wait on a lock", async () => {
        const { rows } = await sql<{
          n: number;
        }>`select count(*)::int as n from ${activity} where datname = current_database() and wait_event_type = 'Lock'`.execute(database.db);
        return rows[0]!.n > 0;
      });
    } else {
      // PGlite has one connection: the second transaction queues behind the first and nothing can
      // look at it meanwhile. A negative check: it has not finished within 100 ms.
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(secondDone).toBe(false);
    release();
    await first;
    expect(await second).toBe(firstSeq + 1);
  });

  // Appends on their own (no caller's transaction): one statement each, committing on its own, or
  // several sharing one statement and one commit when they arrive together (group commit).
  const alone = (tenantId: string, streamId: string, expectedVersion: number | "any", events: DomainEvent[] = [tokenIssued(streamId)]) =>
    appendEvents(database.db, { tenantId, streamType: "access_token", streamId, expectedVersion, events, metadata, occurredAt: new Date() });
  const roundTrips = async (fn: () => Promise<unknown>) => {
    const meter = { count: 0 };
    await meterRoundTrips(meter, fn);
    return meter.count;
  };

  it("appends on its own in one round trip, and appends arriving together share statements", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    expect(await roundTrips(() => alone(tenant, randomUUID(), 0))).toBe(1);
    expect(await roundTrips(() => alone(tenant, "two-events", 0, [tokenIssued("two-events"), tokenRevoked("two-events")]))).toBe(1);
    const others = [0, 1, 2].map(() => `t-${randomUUID().slice(0, 8)}`);
    const together = await roundTrips(() => Promise.all([tenant, ...others].flatMap((t) => Array.from({ length: 10 }, () => alone(t, randomUUID(), 0)))));
    expect(together).toBeLessThan(40);
    const log = await logOf(tenant);
    expect(log.map((e) => e.sequence)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    expect(await firstProblem(log)).toBeNull();
    for (const t of others) expect(await firstProblem(await logOf(t))).toBeNull();
  });

  it("on its own too, exactly one of 20 appends at the same expected version commits, whether or not they share a statement", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    for (let round = 0; round < 5; round++) {
      const stream = randomUUID();
      await alone(tenant, stream, 0);
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => alone(tenant, stream, 1, [tokenRevoked(stream)])));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(results.filter((r) => r.status === "rejected" && r.reason instanceof ConflictError)).toHaveLength(19);
    }
    const log = await logOf(tenant);
    expect(log.map((e) => e.sequence)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(await firstProblem(log)).toBeNull();
  });

  it("fails only the append whose projection fails, when it shared a statement with others", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    const twice = randomUUID();
    // The same token id in two streams: the second access_tokens row breaks its primary key.
    const results = await Promise.allSettled([
      ...Array.from({ length: 5 }, () => alone(tenant, randomUUID(), 0)),
      alone(tenant, randomUUID(), 0, [tokenIssued(twice)]),
      alone(tenant, randomUUID(), 0, [tokenIssued(twice)]),
      ...Array.from({ length: 5 }, () => alone(tenant, randomUUID(), 0)),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(11);
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(1);
    const log = await logOf(tenant);
    expect(log.map((e) => e.sequence)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    expect(await firstProblem(log)).toBeNull();
    const tokens = await withTenant(database.db, tenant, (trx) => trx.selectFrom("access_tokens").select("token_id").where("tenant_id", "=", tenant).execute());
    expect(tokens).toHaveLength(11);
  });

  it('appends to a stream at whatever version it holds ("any"), many at once, each once, in order', async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    const stored = await Promise.all(Array.from({ length: 30 }, () => alone(tenant, "any-stream", "any", [tokenIssued()])));
    expect(stored.map(([e]) => e!.streamVersion).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const log = await logOf(tenant);
    expect(log.map((e) => e.streamVersion)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(await firstProblem(log)).toBeNull();
  });

  it("rejects an unknown event type or invalid event data and writes nothing", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    await append(tenant, randomUUID(), 0);
    await expect(append(tenant, "x", 0, [{ type: "made.up", data: {} }])).rejects.toThrow(/unknown event type/);
    await expect(append(tenant, "y", 0, [{ type: "access_token.issued", data: { tokenId: 7 } }])).rejects.toThrow();
    expect(await logOf(tenant)).toHaveLength(1);
  });

  it("refuses an expected version that is ahead of the stream", async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    await expect(append(tenant, "s", 3)).rejects.toBeInstanceOf(ConflictError);
    expect(await logOf(tenant)).toHaveLength(0);
  });
});
