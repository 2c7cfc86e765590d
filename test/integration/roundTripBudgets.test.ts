import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Database round trips per request are exact on any machine (the server counts every message its
// store sends, BEGIN and COMMIT included: keyplane_http_db_round_trips). These budgets hold what the
// request path costs today, so that no change adds a round trip unnoticed; a change that saves some
// lowers them. Lists: listRoundTrips.test.ts (every list of the schema, 1 row against 50).

let app: TestApp;
let tenant: SeededTenant;

beforeAll(async () => {
  app = await createTestApp({ name: "round-trips", env: { RATE_LIMITS: "off", AGENT_SWEEP_INTERVAL_SECONDS: "3600" } });
  tenant = await app.seedTenant({ tier: "enterprise" });
});
afterAll(() => app?.close());

async function roundTrips(query: string, variables: Record<string, unknown> = {}, token = tenant.tokens.admin): Promise<number> {
  const { result, roundTrips } = await app.roundTripsOf(() => app.gql(query, variables, { token }));
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return roundTrips;
}

describe("round trips per request", () => {
  it("{ me }: none once the token's standing is known (authentication from memory)", async () => {
    await roundTrips("{ me { __typename } }");
    expect(await roundTrips("{ me { __typename } }")).toBe(0);
  });

  it("createAgent: one transaction: the quota, the stream, the append, its projection and the row it answers with", async () => {
    const cost = await roundTrips('mutation { createAgent(input: { name: "budget", type: "worker" }) { id version lastSeenAt } }');
    expect(cost).toBeLessThanOrEqual(6);
  });

  it("deleteAgent: one transaction that reads nothing back (it answers a Boolean)", async () => {
    const created = await app.gql('mutation { createAgent(input: { name: "doomed", type: "worker" }) { id } }', {}, { token: tenant.tokens.admin });
    expect(await roundTrips("mutation ($id: ID!) { deleteAgent(id: $id) }", { id: created.data.createAgent.id })).toBeLessThanOrEqual(4);
  });

  it("createTenant and changeTenantTier: one transaction each, answering the tenant as it projected", async () => {
    const platform = await app.platformToken();
    await roundTrips("{ me { __typename } }", {}, platform); // its standing known: authentication costs nothing
    expect(await roundTrips('mutation { createTenant(input: { id: "budget-tenant", name: "Budget" }) { id tier version } }', {}, platform)).toBeLessThanOrEqual(
      5,
    );
    expect(await roundTrips('mutation { changeTenantTier(id: "budget-tenant", tier: pro) { tier version } }', {}, platform)).toBeLessThanOrEqual(5);
  });
});
