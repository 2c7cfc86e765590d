import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Database round trips per request are exact on any machine (the server counts every message its
// store sends, BEGIN and COMMIT included: keyplane_http_db_round_trips). These budgets hold what the
// request path costs today, so that no change adds a round trip unnoticed; a change that saves some
// lowers them. A list's cost must not grow with its page.

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
    expect(cost).toBeLessThanOrEqual(7);
  });
});

describe("lists cost the same for 1 row as for 50", () => {
  beforeAll(async () => {
    for (let i = 0; i < 50; i++) {
      const res = await app.gql("mutation ($n: String!) { createAgent(input: { name: $n, type: \"worker\", tags: [\"budget\"] }) { id } }", { n: `agent ${i}` }, { token: tenant.tokens.admin });
      expect(res.errors).toBeUndefined();
    }
  });

  const lists: Array<{ name: string; query: string; budget: number }> = [
    { name: "agents", query: "query ($first: Int!) { agents(first: $first) { nodes { id name status connection lastSeenAt host tags } pageInfo { hasNextPage endCursor } } }", budget: 3 },
    { name: "agents with each one's history", query: "query ($first: Int!) { agents(first: $first) { nodes { id history(first: 5) { type sequence } } } }", budget: 6 },
    { name: "auditLog", query: "query ($first: Int!) { auditLog(first: $first) { edges { cursor node { sequence type data metadata } } pageInfo { hasNextPage } } }", budget: 3 },
  ];

  for (const list of lists) {
    it(`${list.name}: one page costs the same whatever its size, within ${list.budget}`, async () => {
      const one = await roundTrips(list.query, { first: 1 });
      const fifty = await roundTrips(list.query, { first: 50 });
      expect({ one, fifty }).toEqual({ one, fifty: one });
      expect(fifty).toBeLessThanOrEqual(list.budget);
    });
  }
});
