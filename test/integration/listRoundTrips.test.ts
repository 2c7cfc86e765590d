import { randomBytes } from "node:crypto";
import { getNamedType, getNullableType, isListType, isObjectType, type GraphQLObjectType } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schema } from "../../src/graphql/schema.ts";
import { createEnrollmentKey, enrollWithKey, seedAgent, seedInstallation } from "../testkit/fixtures.ts";
import { browseLink, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// No list of the API costs more database round trips for 50 rows than for 1 (no N+1), and none costs
// more than BUDGET. The lists are found in the schema itself: every field, on Query or on an object
// type reachable from it, that returns a list of objects or a connection. A field with `first` is
// asked for first: 1 and first: 50; one without is asked of a tenant with 1 row and of one with 50.
// A list field without a case below fails the suite: a new list comes with its measurement.
// Round trips are the server's own count per request (BEGIN and COMMIT included; see roundTripBudgets).

/** A 50-row list: one transaction with at most two queries (a page and what its rows need). */
const BUDGET = 4;

interface ListField {
  name: string;
  paged: boolean;
}

const isConnection = (type: GraphQLObjectType) => "edges" in type.getFields() && "pageInfo" in type.getFields();

/** Every field returning a list of objects or a connection, on `root` and every object type reachable from it. */
function listFieldsOf(root: GraphQLObjectType): ListField[] {
  const seen = new Set<string>();
  const found: ListField[] = [];
  const visit = (type: GraphQLObjectType) => {
    if (seen.has(type.name)) return;
    seen.add(type.name);
    for (const field of Object.values(type.getFields())) {
      const named = getNamedType(field.type);
      if (!isObjectType(named)) continue;
      // A connection's edges and nodes are the rows of the field that returns it, measured there.
      const returnsList = isListType(getNullableType(field.type)) || isConnection(named);
      if (returnsList && !isConnection(type)) found.push({ name: `${type.name}.${field.name}`, paged: field.args.some((a) => a.name === "first") });
      visit(named);
    }
  };
  visit(root);
  return found;
}

let world: ProviderWorld;
let app: TestApp;
/** 50 rows of every list (enterprise: no agent quotas). */
let big: SeededTenant;
/** 1 row of the lists without `first`. */
let small: SeededTenant;
let platform: string;
let agentWithHistory: string;
let taskAgentToken: string;

function ok<T = any>(res: GraphQLResponse<T>): T {
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data;
}

const createAgent = (name: string): Promise<string> => seedAgent(app, big, { name, type: "worker" }, big.tokens.admin);

async function setPolicy(t: SeededTenant, name: string, repositories: string[]) {
  const input = { name, app: "rex", roles: ["service"], repositories, permissions: { contents: "read" } };
  ok(await app.gql("mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name } }", { input }, { token: t.tokens.admin }));
}

beforeAll(async () => {
  world = await startProviderWorld();
  app = await createTestApp({
    name: "list-round-trips",
    env: { ...world.env, AGENT_SWEEP_INTERVAL_SECONDS: "3600", LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1", LOG_STREAM_MAX_PER_TENANT: "50" },
  });
  big = await app.seedTenant({ tier: "enterprise" });
  small = await app.seedTenant();
  platform = await app.platformToken();

  // Agents, one of them with 50 events of its own (created, then 49 updates).
  const agents: string[] = [];
  for (let i = 0; i < 50; i++) agents.push(await createAgent(`agent ${i}`));
  agentWithHistory = agents[0]!;
  for (let version = 1; version < 50; version++) {
    ok(
      await app.gql(
        "mutation ($input: UpdateAgentInput!) { updateAgent(input: $input) { version } }",
        { input: { id: agentWithHistory, expectedVersion: version, name: `renamed ${version}` } },
        { token: big.tokens.admin },
      ),
    );
  }

  // Enrollment keys (one of them enrolls the machine the tasks go to), and 50 tasks pending for it.
  const keys: string[] = [];
  for (let i = 0; i < 50; i++) keys.push((await createEnrollmentKey(app, big)).key);
  await createEnrollmentKey(app, small);
  const enrolled = ok(await enrollWithKey(app, keys[0]!, { hostname: "worker-1" })).enrollAgent;
  taskAgentToken = enrolled.accessToken;
  for (let i = 0; i < 50; i++) {
    ok(
      await app.gql(
        "mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { id } }",
        { input: { agentId: enrolled.agentId, kind: "build", payload: { i } } },
        { token: big.tokens.editor },
      ),
    );
  }

  // Installations: 50 Slack workspaces, and the rex GitHub App on an org for the tokens.
  for (let i = 0; i < 50; i++) expect((await seedInstallation(app, big.tokens.editor, "slack")).outcome).toBe("created");
  const org = `org-${randomBytes(4).toString("hex")}`;
  world.github.setNextInstall({ account: { login: org, type: "Organization" }, repositories: ["api"], permissions: { contents: "read", metadata: "read" } });
  await seedInstallation(app, big.tokens.editor, "github", { query: "app=rex" });

  // Log streams (paused: their address is no receiver) and alert rules, 50 here and 1 in the small tenant.
  for (const [t, count] of [
    [big, 50],
    [small, 1],
  ] as const) {
    for (let i = 0; i < count; i++) {
      const made = ok(
        await app.gql(
          "mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { logStream { id } } }",
          { input: { name: `stream ${i}`, kind: "splunk", url: "https://127.0.0.1:9", secret: "list-round-trips-token" } },
          { token: t.tokens.admin },
        ),
      );
      ok(await app.gql("mutation ($id: ID!) { pauseLogStream(id: $id) { id } }", { id: made.createLogStream.logStream.id }, { token: t.tokens.admin }));
      ok(
        await app.gql(
          "mutation ($input: CreateAlertRuleInput!) { createAlertRule(input: $input) { id } }",
          { input: { name: `rule ${i}`, condition: { kind: "event_count", eventType: "auth.failed", count: 10, windowMinutes: 5 } } },
          { token: t.tokens.admin },
        ),
      );
    }
  }
  registerSecret("list-round-trips-token");

  // Token policies (50 here, 1 in the small tenant), and 50 issues of a token (the first minted, then cached).
  for (let i = 0; i < 50; i++) await setPolicy(big, `policy-${i}`, [`${org}/api`]);
  await setPolicy(small, "only", ["elsewhere/api"]);
  for (let i = 0; i < 50; i++) {
    const issued = ok(
      await app.gql(
        "mutation ($input: IssueGitHubTokenInput!) { issueGitHubToken(input: $input) { token } }",
        { input: { app: "rex", repository: `${org}/api`, permissions: { contents: "read" } } },
        { token: big.tokens.service },
      ),
    );
    registerSecret(issued.issueGitHubToken.token);
  }
}, 300_000);
afterAll(async () => {
  await app?.close();
  await world?.close();
});

interface Measured {
  roundTrips: number;
  rows: number;
}

async function measure(query: string, variables: Record<string, unknown>, token: string, rowsOf: (data: any) => number): Promise<Measured> {
  // The token's standing is then in memory: authentication adds no round trip to what is measured.
  // (Through roundTripsOf, which waits until the server has counted that request too.)
  ok((await app.roundTripsOf(() => app.gql("{ me { __typename } }", {}, { token }))).result);
  const { result, roundTrips } = await app.roundTripsOf(() => app.gql(query, variables, { token }));
  return { roundTrips, rows: rowsOf(ok(result)) };
}

interface ListCase {
  label: string;
  /** Whether `size` is the query's `first` (exactly that many rows) or the rows the tenant holds. */
  paged: boolean;
  measure(size: 1 | 50): Promise<Measured>;
}

/** A field with `first`: the query takes $first, and the big tenant has at least 50 rows. */
const paged = (
  label: string,
  query: string,
  token: () => string,
  rowsOf: (data: any) => number,
  variables: () => Record<string, unknown> = () => ({}),
): ListCase => ({
  label,
  paged: true,
  measure: (size) => measure(query, { ...variables(), first: size }, token(), rowsOf),
});

/** A field without `first`: asked of a tenant with 1 row, then of one with 50. */
const unpaged = (label: string, query: string, rowsOf: (data: any) => number): ListCase => ({
  label,
  paged: false,
  measure: (size) => measure(query, {}, (size === 1 ? small : big).tokens.admin, rowsOf),
});

const CASES: Record<string, ListCase[]> = {
  "Query.agents": [
    paged(
      "agents",
      "query ($first: Int!) { agents(first: $first) { edges { cursor node { id name status connection lastSeenAt host tags } } nodes { id } pageInfo { hasNextPage endCursor } } }",
      () => big.tokens.viewer,
      (d) => d.agents.nodes.length,
    ),
  ],
  "Agent.history": [
    paged(
      "one agent's history",
      "query ($id: ID!, $first: Int!) { agent(id: $id) { history(first: $first) { sequence type data } } }",
      () => big.tokens.viewer,
      (d) => d.agent.history.length,
      () => ({ id: agentWithHistory }),
    ),
    paged(
      "a page of agents, each with its history",
      "query ($first: Int!) { agents(first: $first) { nodes { id history(first: 5) { type } } } }",
      () => big.tokens.viewer,
      (d) => d.agents.nodes.length,
    ),
  ],
  "Query.auditLog": [
    paged(
      "auditLog",
      "query ($first: Int!) { auditLog(first: $first) { edges { cursor node { sequence type data metadata } } nodes { sequence } pageInfo { hasNextPage endCursor } } }",
      () => big.tokens.admin,
      (d) => d.auditLog.edges.length,
    ),
  ],
  "Query.installations": [
    paged(
      "installations",
      "query ($first: Int!) { installations(first: $first) { edges { cursor node { id platform status account { login } refresh { failures } } } pageInfo { hasNextPage } } }",
      () => big.tokens.viewer,
      (d) => d.installations.edges.length,
    ),
  ],
  "Query.issuedTokens": [
    paged(
      "issuedTokens",
      "query ($first: Int!) { issuedTokens(first: $first) { nodes { id app requester repositories cached expiresAt } pageInfo { hasNextPage endCursor } } }",
      () => big.tokens.admin,
      (d) => d.issuedTokens.nodes.length,
    ),
  ],
  "Query.tasks": [
    paged(
      "tasks",
      "query ($first: Int!) { tasks(first: $first) { edges { cursor node { id kind status payload } } pageInfo { hasNextPage } } }",
      () => big.tokens.viewer,
      (d) => d.tasks.edges.length,
    ),
  ],
  "Query.pendingTasks": [
    paged(
      "pendingTasks",
      "query ($first: Int!) { pendingTasks(first: $first) { id kind payload deadlineAt } }",
      () => taskAgentToken,
      (d) => d.pendingTasks.length,
    ),
  ],
  "Query.enrollmentKeys": [unpaged("enrollmentKeys", "{ enrollmentKeys { id prefix state uses tags } }", (d) => d.enrollmentKeys.length)],
  "Query.tokenPolicies": [unpaged("tokenPolicies", "{ tokenPolicies { name app repositories permissions } }", (d) => d.tokenPolicies.length)],
  "Query.logStreams": [
    unpaged(
      "logStreams",
      "{ logStreams { id name kind destination settings filter { types securityOnly } state health lastError lagEvents lagSeconds lastSuccessAt } }",
      (d) => d.logStreams.length,
    ),
  ],
  "Query.alertRules": [
    unpaged("alertRules", "{ alertRules { id name condition cooldownMinutes slack { channel } firedCount lastFiredAt } }", (d) => d.alertRules.length),
  ],
  "Query.linkedIdentities": [
    {
      label: "linkedIdentities (an admin's view of the tenant's, each linked by its own service principal)",
      paged: false,
      async measure(size) {
        const tenant = size === 1 ? small : big;
        for (let i = 0; i < size; i++) {
          const principal = await app.mintToken({ tenantId: tenant.tenantId, roles: ["service"], subject: `svc-${size}-${i}` });
          const linked = await browseLink(app, world.github, principal, `lister-${randomBytes(4).toString("hex")}`);
          expect(linked.status, JSON.stringify(linked.body)).toBe(200);
        }
        return measure(
          "{ linkedIdentities { id app subject login status accessExpiresAt refreshExpiresAt refresh { failures lastError } } }",
          {},
          tenant.tokens.admin,
          (d) => d.linkedIdentities.length,
        );
      },
    },
  ],
  "Query.tenants": [
    {
      label: "tenants (the suite's own few, then 50 more)",
      paged: false,
      async measure(size) {
        if (size === 50) for (let i = 0; i < 50; i++) await app.seedTenant();
        return measure("{ tenants { id name tier status } }", {}, platform, (d) => d.tenants.length);
      },
    },
  ],
};

describe("round trips of every list of the schema", () => {
  it("every list field has a case here, and every case a list field", () => {
    const fields = listFieldsOf(schema.getQueryType()!)
      .map((f) => f.name)
      .sort();
    expect(Object.keys(CASES).sort()).toEqual(fields);
  });

  it("a case measures a field with `first` through `first`, one without through the rows it holds", () => {
    for (const field of listFieldsOf(schema.getQueryType()!)) {
      // Agent.history's second case pages the agents instead, with each one's history.
      expect(CASES[field.name]![0]!.paged, field.name).toBe(field.paged);
    }
  });

  for (const [field, cases] of Object.entries(CASES)) {
    for (const list of cases) {
      it(`${field} (${list.label}): 50 rows cost what 1 row costs, within ${BUDGET} round trips`, async () => {
        const one = await list.measure(1);
        const fifty = await list.measure(50);
        if (list.paged) expect({ one: one.rows, fifty: fifty.rows }).toEqual({ one: 1, fifty: 50 });
        else {
          expect(one.rows).toBeGreaterThanOrEqual(1);
          expect(one.rows).toBeLessThan(10);
          expect(fifty.rows).toBeGreaterThanOrEqual(50);
        }
        expect({ one: one.roundTrips, fifty: fifty.roundTrips }).toEqual({ one: one.roundTrips, fifty: one.roundTrips });
        expect(fifty.roundTrips).toBeLessThanOrEqual(BUDGET);
      });
    }
  }
});
