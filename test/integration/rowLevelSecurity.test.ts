import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/auth/actor.ts";
import { createTenant } from "../../src/app/tenants.ts";
import type { DatabaseHandle } from "../../src/store/db.ts";
import { createTestDatabase, onCitus } from "../testkit/testDatabase.ts";

// Superusers bypass row-level security, so the wall is probed as an ordinary role, the way
// production connects. On Citus the suite already connects as the database's owner role (not a
// superuser), with the rows in shards on a worker: the probe is that role itself.
const PROBE_ROLE = onCitus ? undefined : "keyplane_rls_probe";

describe("row-level security on tenant tables", () => {
  let database: DatabaseHandle & { schema?: string };
  beforeAll(async () => {
    database = await createTestDatabase();
    const db = database.db;
    for (const id of ["rls-a", "rls-b"]) await createTenant({ db, now: () => new Date() }, systemActor("rls-test"), { id, name: id });
    const schema = database.schema ?? "public";
    for (const statement of !PROBE_ROLE
      ? []
      : [
          `do $$ begin if not exists (select 1 from pg_roles where rolname = '${PROBE_ROLE}') then create role ${PROBE_ROLE} nologin; end if; exception when duplicate_object or unique_violation then null; end $$`,
          `grant usage on schema ${schema} to ${PROBE_ROLE}`,
          `grant select, insert on all tables in schema ${schema} to ${PROBE_ROLE}`,
        ]) {
      await sql.raw(statement).execute(db);
    }
  });
  afterAll(() => database.close());

  const asProbe = <T>(setup: string, query: string) =>
    database.db.transaction().execute(async (trx) => {
      if (PROBE_ROLE) await sql.raw(`set local role ${PROBE_ROLE}`).execute(trx);
      if (setup) await sql.raw(setup).execute(trx);
      return (await sql.raw<T>(query).execute(trx)).rows;
    });

  it("shows no row to a query that did not name its tenant", async () => {
    for (const table of ["events", "tenants", "tenant_heads", "access_tokens", "sessions", "revoked_tokens"]) {
      const rows = await asProbe<{ n: number }>("", `select count(*)::int as n from ${table}`);
      expect(rows[0]!.n, table).toBe(0);
    }
  });

  it("guards every table that has a tenant_id column, and the platform-wide tables, with forced row-level security", async () => {
    const { rows } = await sql<{ table: string; rls: boolean; forced: boolean }>`
      select c.relname as table, c.relrowsecurity as rls, c.relforcerowsecurity as forced
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and n.nspname = current_schema()
        and (exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
             or c.relname in ('webhook_deliveries', 'webhook_payloads', 'github_unclaimed_installations'))`.execute(database.db);
    expect(rows.map((r) => r.table)).toEqual(
      expect.arrayContaining(["events", "installations", "installation_secrets", "oauth_states", "webhook_deliveries", "webhook_payloads"]),
    );
    expect(rows.filter((r) => !r.rls || !r.forced).map((r) => r.table)).toEqual([]);
  });

  it("shows exactly the rows of the tenant named by the transaction", async () => {
    const rows = await asProbe<{ tenant_id: string }>(`set local keyplane.tenant_id = 'rls-a'`, `select distinct tenant_id from events`);
    expect(rows).toEqual([{ tenant_id: "rls-a" }]);
    const tenants = await asProbe<{ tenant_id: string }>(`set local keyplane.tenant_id = 'rls-b'`, `select tenant_id from tenants`);
    expect(tenants).toEqual([{ tenant_id: "rls-b" }]);
  });

  it("refuses to write a row for another tenant than the one named", async () => {
    await expect(
      asProbe(
        `set local keyplane.tenant_id = 'rls-a'`,
        `insert into tenants (tenant_id, name, tier, status, version, created_at, updated_at) values ('rls-b2', 'x', 'free', 'active', 1, now(), now())`,
      ),
    ).rejects.toThrow(/row-level security/);
  });
});
