import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { createTenant } from "../../src/app/tenants.ts";
import { AccessTokenIssued } from "../../src/domain/session/events.ts";
import { COORDINATOR_TABLES, distributeOnCitus, KEYED_TABLES, REFERENCE_TABLES, TENANT_TABLES } from "../../src/store/citus.ts";
import { openDatabase, withTenant, type DatabaseHandle } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { meterRoundTrips } from "../../src/store/roundTrips.ts";
import { createTestDatabase, onCitus, onPostgres } from "../testkit/testDatabase.ts";

// Where each table lives on Citus (src/store/citus.ts). The first part runs on every backend: a table
// a migration adds must be placed, or it would stay on the coordinator alone. The rest runs on the
// two-node cluster of the CI's Citus lane, with every shard on the worker.

const tokenIssued = () =>
  AccessTokenIssued({
    tokenId: randomUUID(),
    subject: "svc",
    kind: "service",
    roles: ["service"],
    scopes: [],
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    issuedVia: "api",
  });

let database: DatabaseHandle;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.close());

const tables = async (): Promise<string[]> => {
  const { rows } = await sql<{ name: string }>`
    select c.relname as name from pg_class c where c.relkind in ('r', 'p') and c.relnamespace = current_schema()::regnamespace`.execute(database.db);
  return rows.map((r) => r.name).sort();
};

describe("placement of every table", () => {
  it("names every table of the schema exactly once: tenant, reference, keyed or coordinator-only", async () => {
    const placed = [...TENANT_TABLES, ...REFERENCE_TABLES, ...Object.keys(KEYED_TABLES), ...COORDINATOR_TABLES];
    expect(new Set(placed).size).toBe(placed.length);
    expect([...placed].sort()).toEqual(await tables());
  });

  it("gives every tenant table a tenant_id column that begins its primary key", async () => {
    const { rows } = await sql<{ table: string; first: string }>`
      select c.relname as table, a.attname as first
      from pg_index i join pg_class c on c.oid = i.indrelid join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
      where i.indisprimary and c.relnamespace = current_schema()::regnamespace`.execute(database.db);
    const firstOf = new Map(rows.map((r) => [r.table, r.first]));
    for (const table of TENANT_TABLES) expect(firstOf.get(table), table).toBe("tenant_id");
  });

  it("keeps no unique index without tenant_id on a tenant table (Citus refuses one)", async () => {
    const { rows } = await sql<{ table: string; index: string }>`
      select c.relname as table, ic.relname as index
      from pg_index i join pg_class c on c.oid = i.indrelid join pg_class ic on ic.oid = i.indexrelid
      where i.indisunique and c.relnamespace = current_schema()::regnamespace
        and not exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and a.attnum = any (i.indkey))`.execute(database.db);
    expect(rows.filter((r) => (TENANT_TABLES as readonly string[]).includes(r.table))).toEqual([]);
  });
});

describe.skipIf(!onPostgres)("connections", () => {
  it("ask Citus to forward SET LOCAL to the workers, also when the URL carries startup options of its own", async () => {
    const { rows: named } = await sql<{ name: string }>`select current_database() as name`.execute(database.db);
    const url = Object.assign(new URL(process.env.TEST_DATABASE_URL!), { pathname: `/${named[0]!.name}` });
    url.searchParams.set("options", "-c statement_timeout=4321");
    const handle = await openDatabase({ url: url.toString(), poolMax: 1 });
    try {
      const { rows } = await sql<{ propagate: string; timeout: string }>`
        select current_setting('citus.propagate_set_commands', true) as propagate, current_setting('statement_timeout') as timeout`.execute(handle.db);
      expect(rows[0]).toEqual({ propagate: "local", timeout: "4321ms" });
    } finally {
      await handle.close();
    }
  });
});

describe.skipIf(!onCitus)("on a two-node Citus cluster", () => {
  it("distributes the tenant tables by tenant_id in one colocation group, the lookups as reference tables, the counters by key", async () => {
    const { rows } = await sql<{ table: string; method: string; column: string | null; colocation: number }>`
      select c.relname as table, p.partmethod as method, column_to_column_name(p.logicalrelid, p.partkey) as column, p.colocationid as colocation
      from pg_dist_partition p join pg_class c on c.oid = p.logicalrelid where c.relnamespace = current_schema()::regnamespace`.execute(database.db);
    const of = new Map(rows.map((r) => [r.table, r]));
    const colocations = new Set(TENANT_TABLES.map((t) => of.get(t)?.colocation));
    expect(colocations.size).toBe(1);
    for (const table of TENANT_TABLES) expect(of.get(table), table).toMatchObject({ method: "h", column: "tenant_id" });
    for (const table of REFERENCE_TABLES) expect(of.get(table), table).toMatchObject({ method: "n" });
    expect(of.get("rate_limits")).toMatchObject({ method: "h", column: "key" });
    expect(colocations.has(of.get("rate_limits")!.colocation)).toBe(false);
  });

  it("keeps every tenant shard on the worker, none on the coordinator", async () => {
    const { rows } = await sql<{ group: number; shards: number }>`
      select n.groupid as group, count(*)::int as shards
      from pg_dist_shard s join pg_dist_placement pl on pl.shardid = s.shardid join pg_dist_node n on n.groupid = pl.groupid
      where s.logicalrelid = 'events'::regclass group by n.groupid`.execute(database.db);
    expect(rows.length).toBe(1);
    expect(rows[0]!.group).not.toBe(0);
  });

  it("delegates the append to the tenant's node: one command reaches the worker, projections included, under the tenant's row-level security", async () => {
    await createTenant({ db: database.db, now: () => new Date() }, systemActor("citus-test"), { id: "citus-a", name: "A" });
    // A pool of its own, whose connections report each command Citus sends to a worker (as a notice,
    // while log_remote_commands is on): the real append path, counted.
    const { rows: named } = await sql<{ name: string }>`select current_database() as name`.execute(database.db);
    const url = Object.assign(new URL(process.env.TEST_DATABASE_URL!), { pathname: `/${named[0]!.name}` }).toString();
    const counted = await openDatabase({ url, poolMax: 1 });
    const commands: string[] = [];
    counted.pool!.on("connect", (client) =>
      client.on("notice", (notice) => {
        if (notice.message?.startsWith("issuing ")) commands.push(notice.message.slice("issuing ".length));
      }),
    );
    try {
      const stored = await withTenant(counted.db, "citus-a", async (trx) => {
        await sql`set local citus.log_remote_commands = on`.execute(trx);
        await sql`set local client_min_messages = log`.execute(trx);
        return appendEvents(trx, {
          tenantId: "citus-a",
          streamType: "access_token",
          streamId: randomUUID(),
          expectedVersion: 0,
          events: [tokenIssued()],
          metadata: eventMetadata(systemActor("citus-test", "citus-a")),
          occurredAt: new Date(),
        });
      });
      expect(stored).toHaveLength(1);
    } finally {
      await counted.close();
    }
    const appendCommands = commands.filter((c) => /keyplane_append_tenant/.test(c));
    expect(appendCommands, commands.join("\n")).toHaveLength(1);
    // Not statement by statement: nothing of the function's body (nor the projection) was sent from the coordinator.
    expect(
      commands.filter((c) => /tenant_heads|insert into .*(events|access_tokens)/i.test(c) && !/keyplane_append_tenant/.test(c)),
      commands.join("\n"),
    ).toEqual([]);
    // The tenant setting travelled with it (SET LOCAL propagation), so the worker saw the right tenant.
    expect(
      commands.some((c) => /set local keyplane\.tenant_id = E'citus-a'/i.test(c)),
      commands.join("\n"),
    ).toBe(true);
  });

  it("an append on its own is one statement, run on the tenant's node with its projection, which scopes itself to the tenant", async () => {
    await createTenant({ db: database.db, now: () => new Date() }, systemActor("citus-test"), { id: "citus-c", name: "C" });
    const { rows: named } = await sql<{ name: string }>`select current_database() as name`.execute(database.db);
    const url = Object.assign(new URL(process.env.TEST_DATABASE_URL!), { pathname: `/${named[0]!.name}` }).toString();
    const counted = await openDatabase({ url, poolMax: 1 });
    const commands: string[] = [];
    const sent = { statements: 0 };
    counted.pool!.on("connect", (client) => {
      client.on("notice", (notice) => {
        if (notice.message?.startsWith("issuing ")) commands.push(notice.message.slice("issuing ".length));
      });
      void client.query("set citus.log_remote_commands = on; set client_min_messages = log");
    });
    try {
      await sql`select 1`.execute(counted.db);
      const trips = { count: 0 };
      const stored = await meterRoundTrips(trips, () =>
        appendEvents(counted.db, {
          tenantId: "citus-c",
          streamType: "access_token",
          streamId: randomUUID(),
          expectedVersion: 0,
          events: [tokenIssued()],
          metadata: eventMetadata(systemActor("citus-test", "citus-c")),
          occurredAt: new Date(),
        }),
      );
      sent.statements = trips.count;
      expect(stored).toHaveLength(1);
      const row = await withTenant(counted.db, "citus-c", (trx) =>
        trx
          .selectFrom("access_tokens")
          .select("token_id")
          .where("token_id", "=", (stored[0]!.data as { tokenId: string }).tokenId)
          .executeTakeFirst(),
      );
      expect(row).toBeDefined();
    } finally {
      await counted.close();
    }
    expect(sent.statements).toBe(1);
    const appendCommands = commands.filter((c) => /keyplane_append_tenant/.test(c));
    expect(appendCommands, commands.join("\n")).toHaveLength(1);
    expect(
      commands.filter((c) => /^set local|tenant_heads|insert into .*(events|access_tokens)/i.test(c) && !/keyplane_append_tenant/.test(c)),
      commands.join("\n"),
    ).toEqual([]);
  });

  it("appends under row-level security on the worker: the right tenant writes, another tenant is refused", async () => {
    await createTenant({ db: database.db, now: () => new Date() }, systemActor("citus-test"), { id: "citus-b", name: "B" });
    const append = (scope: string, tenantId: string) =>
      withTenant(database.db, scope, (trx) =>
        appendEvents(trx, {
          tenantId,
          streamType: "access_token",
          streamId: randomUUID(),
          expectedVersion: 0,
          events: [tokenIssued()],
          metadata: eventMetadata(systemActor("citus-test", tenantId)),
          occurredAt: new Date(),
        }),
      );
    const [stored] = await append("citus-b", "citus-b");
    expect(stored!.sequence).toBeGreaterThan(0);
    await expect(append("citus-a", "citus-b")).rejects.toThrow(/row-level security/);
  });

  it("places nothing twice: a second run of the step does nothing", async () => {
    expect(await distributeOnCitus(database)).toEqual([]);
  });
});
