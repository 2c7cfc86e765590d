import { generateKeyPairSync } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/store/db.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { adminQuery, adminUrlOf, onPostgres } from "../testkit/testDatabase.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Authentication serves a token's standing (revoked or not, its tenant's status and tier) from
// memory. Nothing may go stale: a revocation is refused by the process that made it as soon as the
// revoking mutation returns, and by every other process within a second, also when the other
// process's LISTEN connection was lost and the notification with it.

const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const ME = "{ me { tokenId } }";
const REVOKE = "mutation ($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId } }";

let a: TestApp;
let tenant: SeededTenant;
beforeAll(async () => {
  a = await createTestApp({ name: "credential-cache-a", env: { KEYPLANE_SIGNING_KEY: signingKey } });
  tenant = await a.seedTenant();
});
afterAll(() => a?.close());

async function revoke(on: TestApp, token: string): Promise<void> {
  const me = await on.gql(ME, {}, { token });
  const res = await on.gql(REVOKE, { id: me.data.me.tokenId }, { token: tenant.tokens.admin });
  expect(res.errors).toBeUndefined();
}
const accepted = async (on: TestApp, token: string) => (await on.gql(ME, {}, { token })).errors === undefined;

describe("authentication from memory", () => {
  it("asks the database nothing once a token's standing is known", async () => {
    const token = await a.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"] });
    const first = await a.roundTripsOf(() => a.gql(ME, {}, { token }));
    expect(first.roundTrips).toBeGreaterThan(0);
    const again = await a.roundTripsOf(() => a.gql(ME, {}, { token }));
    expect(again.result.errors).toBeUndefined();
    expect(again.roundTrips).toBe(0);
  });

  it("refuses a token in the revoking process as soon as the revocation returns", async () => {
    const token = await a.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"] });
    expect(await accepted(a, token)).toBe(true);
    await revoke(a, token);
    const refused = await a.gql(ME, {}, { token });
    expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });
});

describe.skipIf(!onPostgres)("two processes on one database", () => {
  let b: TestApp;
  let databaseName: string;
  beforeAll(async () => {
    const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(a.database.db);
    databaseName = rows[0]!.name;
    const url = Object.assign(new URL(process.env.TEST_DATABASE_URL!), { pathname: `/${databaseName}` }).toString();
    b = await createTestApp({ name: "credential-cache-b", database: await openDatabase({ url, poolMax: 4 }), env: { KEYPLANE_SIGNING_KEY: signingKey } });
  });
  afterAll(async () => {
    await b?.close();
    await b?.database.close();
  });

  it("the other process refuses a revoked token within a second", async () => {
    const token = await a.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"] });
    expect(await accepted(b, token)).toBe(true);
    expect((await b.roundTripsOf(() => b.gql(ME, {}, { token }))).roundTrips).toBe(0);
    await revoke(a, token);
    const started = Date.now();
    await waitFor("process B to refuse the revoked token", async () => !(await accepted(b, token)), 1000);
    expect(Date.now() - started).toBeLessThanOrEqual(1000);
  });

  it("also when its LISTEN connection was lost, and the notification with it", async () => {
    const token = await a.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"] });
    expect(await accepted(b, token)).toBe(true);
    expect(await accepted(b, token)).toBe(true);
    const killed = await adminQuery(
      adminUrlOf(databaseName),
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'LISTEN%'`,
    );
    expect(killed.rowCount).toBeGreaterThan(0);
    await revoke(a, token);
    const started = Date.now();
    await waitFor("process B to refuse the revoked token", async () => !(await accepted(b, token)), 1000);
    expect(Date.now() - started).toBeLessThanOrEqual(1000);
  });
});
