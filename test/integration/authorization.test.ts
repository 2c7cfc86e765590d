import { randomBytes } from "node:crypto";
import SchemaBuilder from "@pothos/core";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintSignInCode } from "../../src/app/sessions/signInCode.ts";
import { PERMISSIONS } from "../../src/auth/permissions.ts";
import { schema } from "../../src/graphql/schema.ts";
import { browseInstall, browseLink, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type TestApp } from "../testkit/testApp.ts";

// ---------------------------------------------------------------------------------------------
// Reading the built schema: every root field (Query, Mutation, Subscription) with the options
// Pothos kept for it. Pothos stores a field's options, authScopes included, in
// `field.extensions.pothosOptions`.
// ---------------------------------------------------------------------------------------------

interface SchemaLike {
  getQueryType(): TypeLike | null | undefined;
  getMutationType(): TypeLike | null | undefined;
  getSubscriptionType(): TypeLike | null | undefined;
}
interface TypeLike {
  name: string;
  getFields(): Record<string, { extensions?: Record<string, unknown> | null }>;
}

type RootField = { key: string; rootType: "Query" | "Mutation" | "Subscription"; name: string; authScopes: unknown };

function rootFields(s: SchemaLike): RootField[] {
  const fields: RootField[] = [];
  for (const [rootType, type] of [
    ["Query", s.getQueryType()],
    ["Mutation", s.getMutationType()],
    ["Subscription", s.getSubscriptionType()],
  ] as const) {
    if (!type) continue;
    for (const [name, field] of Object.entries(type.getFields())) {
      const options = field.extensions?.pothosOptions as { authScopes?: unknown } | undefined;
      fields.push({ key: `${rootType}.${name}`, rootType, name, authScopes: options?.authScopes });
    }
  }
  return fields;
}

/** A field is guarded when it declares a non-empty scope map (or a scope function). */
function hasAuthScopes(field: RootField): boolean {
  const scopes = field.authScopes;
  if (typeof scopes === "function") return true;
  return typeof scopes === "object" && scopes !== null && Object.keys(scopes).length > 0;
}

const KNOWN_SCOPES = new Set(["public", "authenticated", "permission", "anyPermission"]);

describe("schema walk: every root field declares authScopes", () => {
  const fields = rootFields(schema);

  it("finds the root fields and the scopes of known fields (the detection itself works)", () => {
    const byKey = new Map(fields.map((f) => [f.key, f]));
    expect(byKey.get("Query.me")?.authScopes).toEqual({ authenticated: true });
    expect(byKey.get("Query.auditLog")?.authScopes).toEqual({ permission: "audit:read" });
    expect(byKey.get("Mutation.refreshSession")?.authScopes).toEqual({ public: true });
    expect(byKey.get("Mutation.createTenant")?.authScopes).toEqual({ permission: "tenant:create" });
  });

  it("flags a field without authScopes in a schema that has one", () => {
    const probe = new SchemaBuilder<{ AuthScopes: { public: boolean } }>({
      plugins: [ScopeAuthPlugin],
      scopeAuth: { authScopes: () => ({ public: true }) },
    });
    probe.queryType({
      fields: (t) => ({
        guarded: t.string({ authScopes: { public: true }, resolve: () => "x" }),
        open: t.string({ resolve: () => "x" }),
      }),
    });
    const unguarded = rootFields(probe.toSchema())
      .filter((f) => !hasAuthScopes(f))
      .map((f) => f.key);
    expect(unguarded).toEqual(["Query.open"]);
  });

  it("has no root field without authScopes", () => {
    expect(fields.length).toBeGreaterThan(0);
    const unguarded = fields.filter((f) => !hasAuthScopes(f)).map((f) => f.key);
    expect(unguarded, "root fields without authScopes (add authScopes: {public|authenticated|permission})").toEqual([]);
  });

  it("uses only the scopes of AuthScopes and permissions of the catalogue", () => {
    const problems: string[] = [];
    for (const f of fields) {
      if (typeof f.authScopes !== "object" || f.authScopes === null) continue;
      for (const [scope, value] of Object.entries(f.authScopes)) {
        if (scope.startsWith("$")) continue; // $any / $all combinators
        if (!KNOWN_SCOPES.has(scope)) problems.push(`${f.key}: unknown scope ${scope}`);
        if (scope === "permission" && !(String(value) in PERMISSIONS)) problems.push(`${f.key}: permission ${String(value)} is not in the catalogue`);
        if (scope === "anyPermission") {
          for (const p of value as string[]) if (!(p in PERMISSIONS)) problems.push(`${f.key}: permission ${p} is not in the catalogue`);
        }
        if ((scope === "public" || scope === "authenticated") && value !== true) problems.push(`${f.key}: ${scope} must be true`);
      }
    }
    expect(problems).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The authorization matrix: ONE row per root field, one expected outcome per principal.
// Adding a root field without a row here fails the suite.
// ---------------------------------------------------------------------------------------------

const PRINCIPALS = [
  "anonymous",
  "viewer",
  "editor",
  "admin",
  "service",
  "platform",
  /** viewer token carrying scope audit:read: audit:read grants on its own, and scopes narrow */
  "viewer+audit:read",
  /** admin token narrowed by scope tenant:read */
  "admin+tenant:read",
] as const;
type Principal = (typeof PRINCIPALS)[number];

const allow = "allow";
const FORBIDDEN = "FORBIDDEN";
const UNAUTHENTICATED = "UNAUTHENTICATED";
/** Allowed to ask, but what is asked for is not the principal's to see (another's identity). */
const NOT_FOUND = "NOT_FOUND";
/** Allowed, and GitHub (the fake) then refused what was asked: authorization let it through. */
const PROVIDER_ERROR = "PROVIDER_ERROR";
type Outcome = typeof allow | typeof FORBIDDEN | typeof UNAUTHENTICATED | typeof NOT_FOUND | typeof PROVIDER_ERROR;

interface MatrixContext {
  app: TestApp;
  /** The seeded tenant every tenant principal belongs to. */
  tenantId: string;
  adminToken: string;
  /** A fresh Slack installation of the tenant, installed through the real browser flow. */
  newInstallation(): Promise<string>;
  /** The org the tenant installed the rex GitHub App on; policy "matrix" lets admins and services ask for its tokens. */
  rexOrg: string;
  /** Links (again) the GitHub identity of the tenant's service principal; returns its id. */
  linkServiceIdentity(): Promise<string>;
  /** The GitHub account the service principal links (the app is installed on it: forks go there). */
  serviceLogin: string;
  world: ProviderWorld;
}
interface Operation {
  query: string;
  variables?: Record<string, unknown>;
}
interface MatrixRow {
  /** A minimal valid operation on the field: when allowed, it really succeeds. */
  operation: (ctx: MatrixContext) => Operation | Promise<Operation>;
  /**
   * For a field that spends the token presented (endSession revokes it): the token of the same
   * principal to present instead of the shared one, which the rows after it still need.
   */
  presenting?: (ctx: MatrixContext, token: string) => Promise<string>;
  expect: Record<Principal, Outcome>;
}

const unique = () => randomBytes(5).toString("hex");

/** One pending task of the shared matrix agent, for the task rows. */
let matrixTaskOnce: Promise<{ agentId: string; taskId: string }> | undefined;
function matrixTask(ctx: MatrixContext): Promise<{ agentId: string; taskId: string }> {
  matrixTaskOnce ??= (async () => {
    const agentId = await matrixAgent(ctx);
    const task = await ctx.app.gql(
      "mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { id } }",
      { input: { agentId, kind: "matrix", timeoutSeconds: 3600 } },
      { token: ctx.adminToken },
    );
    expect(task.errors, JSON.stringify(task.errors)).toBeUndefined();
    return { agentId, taskId: task.data.dispatchTask.id as string };
  })();
  return matrixTaskOnce;
}

/** The checkpoint signer's run for the auditCheckpoint row (once: the matrix tenant's log is signed then). */
let matrixCheckpointOnce: Promise<unknown> | undefined;

/**
 * A paused log stream of the matrix tenant made by its admin (a fresh one per operation: the rows
 * pause, delete and rotate it). Paused at once: nothing is delivered to its address.
 */
async function matrixLogStream(ctx: MatrixContext, kind: "splunk" | "webhook" = "splunk"): Promise<string> {
  const made = await ctx.app.gql(
    "mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { secret logStream { id } } }",
    { input: { name: `m-${unique()}`, kind, url: "https://127.0.0.1:9", ...(kind === "splunk" ? { secret: "matrix-splunk-token" } : {}) } },
    { token: ctx.adminToken },
  );
  expect(made.errors).toBeUndefined();
  registerSecret(made.data.createLogStream.secret);
  registerSecret("matrix-splunk-token");
  const id = made.data.createLogStream.logStream.id as string;
  const paused = await ctx.app.gql("mutation ($id: ID!) { pauseLogStream(id: $id) { state } }", { id }, { token: ctx.adminToken });
  expect(paused.errors).toBeUndefined();
  return id;
}

/** Pauses the streams createLogStream rows made (their address is no receiver). */
async function pauseMatrixStreams(ctx: MatrixContext): Promise<void> {
  const list = await ctx.app.gql("query { logStreams { id state } }", {}, { token: ctx.adminToken });
  for (const stream of list.data.logStreams as { id: string; state: string }[]) {
    if (stream.state === "active") await ctx.app.gql("mutation ($id: ID!) { pauseLogStream(id: $id) { id } }", { id: stream.id }, { token: ctx.adminToken });
  }
}

/** An agent of the matrix tenant: one shared, or a fresh one for rows that change it. */
let sharedAgent: Promise<string> | undefined;
function matrixAgent(ctx: MatrixContext, fresh = false): Promise<string> {
  const make = async () => {
    const res = await ctx.app.gql('mutation { createAgent(input: { name: "Matrix", type: "matrix" }) { id } }', {}, { token: ctx.adminToken });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    return res.data.createAgent.id as string;
  };
  if (fresh) return make();
  sharedAgent ??= make();
  return sharedAgent;
}

/** A fresh single-use enrollment key of the matrix tenant. */
async function matrixKey(ctx: MatrixContext): Promise<{ id: string; key: string }> {
  const res = await ctx.app.gql("mutation { createEnrollmentKey(input: {}) { id key } }", {}, { token: ctx.adminToken });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  registerSecret(res.data.createEnrollmentKey.key);
  return res.data.createEnrollmentKey;
}

const MATRIX: Record<string, MatrixRow> = {
  "Query.me": {
    operation: () => ({ query: "query { me { subject tenantId } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
  "Query.tenantUsage": {
    operation: () => ({ query: "query { tenantUsage { tier requests { used } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": allow,
    },
  },
  "Query.tenant": {
    operation: () => ({ query: "query { tenant { id } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": allow,
    },
  },
  "Query.tenants": {
    operation: () => ({ query: "query { tenants { id } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.auditLog": {
    operation: () => ({ query: "query { auditLog(first: 1) { edges { cursor } pageInfo { hasNextPage } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": allow,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.verifyAuditLog": {
    operation: () => ({ query: "query { verifyAuditLog { ok startsFrom lastSequence problem { kind sequence } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": allow,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.auditCheckpoint": {
    operation: async (ctx) => {
      // A checkpoint of the matrix tenant's log, signed once: when allowed, the answer is not null.
      matrixCheckpointOnce ??= ctx.app.kp.checkpointSigner.runOnce({ force: true });
      await matrixCheckpointOnce;
      return { query: "query { auditCheckpoint { sequence chainHash previousSignature signedAt kid jws } }" };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": allow,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.createTenant": {
    operation: () => ({
      query: "mutation ($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
      variables: { input: { id: `matrix-${unique()}`, name: "Matrix tenant" } },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.changeTenantTier": {
    // Moves the matrix tenant up to enterprise (its agent quotas only grow).
    operation: ({ tenantId }) => ({ query: "mutation ($id: ID!) { changeTenantTier(id: $id, tier: enterprise) { id tier } }", variables: { id: tenantId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.suspendTenant": {
    // A tenant of its own: suspending the matrix tenant would refuse every other row's tokens.
    operation: async ({ app }) => ({
      query: 'mutation ($id: ID!) { suspendTenant(id: $id, reason: "matrix") { id status } }',
      variables: { id: (await app.seedTenant()).tenantId },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.resumeTenant": {
    operation: async ({ app }) => ({
      query: "mutation ($id: ID!) { resumeTenant(id: $id) { id status } }",
      variables: { id: (await app.seedTenant()).tenantId },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.issueServiceToken": {
    operation: () => ({ query: 'mutation { issueServiceToken(input: { subject: "matrix-ci" }) { tokenId accessToken } }' }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.revokeAccessToken": {
    // Revokes a real, freshly minted token of the tenant (never the caller's own).
    operation: async ({ app, tenantId }) => ({
      query: "mutation ($tokenId: ID!) { revokeAccessToken(tokenId: $tokenId) { tokenId revokedAt } }",
      variables: { tokenId: await tokenIdOf(app, await app.mintToken({ tenantId, roles: ["viewer"], subject: `throwaway-${unique()}` })) },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.installations": {
    operation: () => ({ query: "query { installations(first: 5) { nodes { id } pageInfo { hasNextPage } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.installation": {
    operation: async (ctx) => ({ query: "query ($id: ID!) { installation(id: $id) { id status } }", variables: { id: await ctx.newInstallation() } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.installationCredentials": {
    // People manage installations; only services receive their tokens.
    operation: async (ctx) => ({
      query: "query ($id: ID!) { installationCredentials(id: $id) { accessToken } }",
      variables: { id: await ctx.newInstallation() },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.startInstallation": {
    operation: () => ({ query: "mutation { startInstallation(platform: slack) { authorizationUrl requestId } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.suspendInstallation": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { suspendInstallation(id: $id) { id status } }", variables: { id: await ctx.newInstallation() } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.resumeInstallation": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { resumeInstallation(id: $id) { id status } }", variables: { id: await ctx.newInstallation() } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.revokeInstallation": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { revokeInstallation(id: $id) { id status } }", variables: { id: await ctx.newInstallation() } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.tokenPolicies": {
    operation: () => ({ query: "query { tokenPolicies { name } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.setTokenPolicy": {
    operation: (ctx) => ({
      query: "mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name } }",
      variables: { input: { name: `p-${unique()}`, app: "rex", roles: ["service"], repositories: [`${ctx.rexOrg}/api`], permissions: { contents: "read" } } },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.deleteTokenPolicy": {
    operation: async (ctx) => {
      const name = `d-${unique()}`;
      const set = await ctx.app.gql(
        "mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name } }",
        { input: { name, app: "rex", roles: ["service"], repositories: [`${ctx.rexOrg}/api`], permissions: { contents: "read" } } },
        { token: ctx.adminToken },
      );
      expect(set.errors).toBeUndefined();
      return { query: "mutation ($name: String!) { deleteTokenPolicy(name: $name) }", variables: { name } };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.logStreams": {
    operation: () => ({ query: "query { logStreams { id health lagEvents } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.logStream": {
    operation: async (ctx) => ({ query: "query ($id: ID!) { logStream(id: $id) { id } }", variables: { id: await matrixLogStream(ctx) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.createLogStream": {
    operation: async (ctx) => {
      await pauseMatrixStreams(ctx);
      return {
        query: "mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { logStream { id } } }",
        variables: { input: { name: `m-${unique()}`, kind: "splunk", url: "https://127.0.0.1:9", secret: "matrix-splunk-token" } },
      };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.updateLogStream": {
    operation: async (ctx) => ({
      query: 'mutation ($id: ID!) { updateLogStream(id: $id, input: { name: "renamed" }) { id } }',
      variables: { id: await matrixLogStream(ctx) },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.rotateLogStreamSecret": {
    operation: async (ctx) => ({
      query: "mutation ($id: ID!) { rotateLogStreamSecret(id: $id, overlapSeconds: 0) { logStream { id } } }",
      variables: { id: await matrixLogStream(ctx, "webhook") },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.pauseLogStream": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { pauseLogStream(id: $id) { id } }", variables: { id: await matrixLogStream(ctx) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.resumeLogStream": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { resumeLogStream(id: $id) { id } }", variables: { id: await matrixLogStream(ctx) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.replayLogStream": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { replayLogStream(id: $id, from: 1) { id } }", variables: { id: await matrixLogStream(ctx) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.deleteLogStream": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { deleteLogStream(id: $id) }", variables: { id: await matrixLogStream(ctx) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.alertRules": {
    operation: () => ({ query: "query { alertRules { id name firedCount } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.createAlertRule": {
    operation: () => ({
      query: "mutation ($input: CreateAlertRuleInput!) { createAlertRule(input: $input) { id } }",
      variables: { input: { name: `a-${unique()}`, condition: { kind: "refresh_token_reuse" } } },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.deleteAlertRule": {
    operation: async (ctx) => {
      const made = await ctx.app.gql(
        "mutation ($input: CreateAlertRuleInput!) { createAlertRule(input: $input) { id } }",
        { input: { name: `d-${unique()}`, condition: { kind: "cross_tenant_access" } } },
        { token: ctx.adminToken },
      );
      expect(made.errors).toBeUndefined();
      return { query: "mutation ($id: ID!) { deleteAlertRule(id: $id) }", variables: { id: made.data.createAlertRule.id } };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.setRetentionPolicy": {
    // The matrix tenant, named (platform operators must name it; its admin may).
    operation: ({ tenantId }) => ({ query: "mutation ($id: ID) { setRetentionPolicy(tenantId: $id, days: 7) { id } }", variables: { id: tenantId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.setLegalHold": {
    // The matrix tenant, named (platform operators must name it; its admin may).
    operation: ({ tenantId }) => ({ query: 'mutation ($id: ID) { setLegalHold(tenantId: $id, reason: "matrix") { id } }', variables: { id: tenantId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.releaseLegalHold": {
    // The matrix tenant, named (platform operators must name it; its admin may).
    operation: ({ tenantId }) => ({ query: "mutation ($id: ID) { releaseLegalHold(tenantId: $id) { id } }", variables: { id: tenantId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: allow,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.issueGitHubToken": {
    operation: (ctx) => ({
      query: "mutation ($input: IssueGitHubTokenInput!) { issueGitHubToken(input: $input) { id token } }",
      variables: { input: { app: "rex", repository: `${ctx.rexOrg}/api` } },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.revokeGitHubToken": {
    // A token the admin received: the admin may revoke it, a service (not its requester) may not.
    operation: async (ctx) => {
      const issued = await ctx.app.gql(
        "mutation ($input: IssueGitHubTokenInput!) { issueGitHubToken(input: $input) { id token } }",
        { input: { app: "rex", repository: `${ctx.rexOrg}/web` } },
        { token: ctx.adminToken },
      );
      expect(issued.errors).toBeUndefined();
      registerSecret(issued.data.issueGitHubToken.token);
      return { query: "mutation ($id: ID!) { revokeGitHubToken(id: $id) { id revokedAt } }", variables: { id: issued.data.issueGitHubToken.id } };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.issuedTokens": {
    operation: () => ({ query: "query { issuedTokens(first: 5) { nodes { id fingerprint } pageInfo { hasNextPage } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  // Tasks: people with agent:read see them, editors dispatch them; only an enrolled agent (none of
  // these principals: the service role's agent:act needs an agent's own credential) acts on them.
  "Query.tasks": {
    operation: () => ({ query: "query { tasks(first: 5) { nodes { id status } pageInfo { hasNextPage } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.task": {
    operation: async (ctx) => ({ query: "query ($id: ID!) { task(id: $id) { id status } }", variables: { id: (await matrixTask(ctx)).taskId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.pendingTasks": {
    operation: () => ({ query: "query { pendingTasks(first: 5) { id } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.dispatchTask": {
    operation: async (ctx) => ({
      query: "mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { id status } }",
      variables: { input: { agentId: (await matrixTask(ctx)).agentId, kind: "matrix" } },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.claimTask": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { claimTask(id: $id) { id } }", variables: { id: (await matrixTask(ctx)).taskId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.reportTaskProgress": {
    operation: async (ctx) => ({
      query: 'mutation ($id: ID!) { reportTaskProgress(id: $id, message: "half") { id } }',
      variables: { id: (await matrixTask(ctx)).taskId },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.completeTask": {
    operation: async (ctx) => ({
      query: "mutation ($id: ID!) { completeTask(id: $id, result: {ok: true}) { id } }",
      variables: { id: (await matrixTask(ctx)).taskId },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.failTask": {
    operation: async (ctx) => ({ query: 'mutation ($id: ID!) { failTask(id: $id, error: "no") { id } }', variables: { id: (await matrixTask(ctx)).taskId } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Subscription.agentTasks": {
    operation: () => ({ query: "subscription { agentTasks { id } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.linkedIdentities": {
    operation: () => ({ query: "query { linkedIdentities { id login } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.identityToken": {
    // Services and agents get their own identity's user token; people never do through Keyplane.
    operation: async (ctx) => {
      await ctx.linkServiceIdentity();
      return { query: "query { identityToken { token login } }" };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.startIdentityLink": {
    operation: () => ({ query: "mutation { startIdentityLink { authorizationUrl requestId } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.unlinkIdentity": {
    // The service's identity: its own principal and admins (identity:manage) unlink it; other people do not see it.
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { unlinkIdentity(id: $id) { id } }", variables: { id: await ctx.linkServiceIdentity() } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: NOT_FOUND,
      editor: NOT_FOUND,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Subscription.identityEvents": {
    // From the start of the log: each person and the service linked an identity before the suite.
    operation: () => ({
      query: "subscription ($after: String) { identityEvents(after: $after) { type } }",
      variables: { after: Buffer.from("seq:0").toString("base64url") },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.githubFork": {
    // Services and agents act on GitHub; the service forks a fresh public repository into its linked account.
    operation: async (ctx) => {
      await ctx.linkServiceIdentity();
      const owner = `matrix-up-${unique()}`;
      ctx.world.github.createRepository({ owner, name: "project" });
      return { query: "mutation ($input: GitHubForkInput!) { githubFork(input: $input) { fork } }", variables: { input: { repository: `${owner}/project` } } };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.githubCommitFile": {
    operation: async (ctx) => {
      await ctx.linkServiceIdentity();
      const name = `m-${unique()}`;
      ctx.world.github.createRepository({ owner: ctx.serviceLogin, ownerType: "User", name });
      return {
        query: "mutation ($input: GitHubCommitFileInput!) { githubCommitFile(input: $input) { commitSha } }",
        variables: { input: { repository: `${ctx.serviceLogin}/${name}`, branch: "matrix", path: "m.txt", content: "m", message: "m" } },
      };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.githubCreatePullRequest": {
    // From main into main: authorized, then GitHub's 422 (no commits between them).
    operation: async (ctx) => {
      await ctx.linkServiceIdentity();
      const name = `m-${unique()}`;
      ctx.world.github.createRepository({ owner: ctx.serviceLogin, ownerType: "User", name });
      return {
        query: "mutation ($input: GitHubPullRequestInput!) { githubCreatePullRequest(input: $input) { number } }",
        variables: { input: { repository: `${ctx.serviceLogin}/${name}`, head: "main", base: "main", title: "m" } },
      };
    },
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: PROVIDER_ERROR,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Subscription.tenantEvents": {
    // From the start of the log, so the first item comes at once.
    operation: () => ({
      query: "subscription ($after: String) { tenantEvents(after: $after) { sequence } }",
      variables: { after: Buffer.from("seq:0").toString("base64url") },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": allow,
    },
  },
  "Subscription.ticks": {
    // Over graphql-ws: an anonymous connection is closed with 4401 before anything runs.
    operation: () => ({ query: "subscription { ticks(count: 1, intervalMs: 10) }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
  // Agents: viewers read, editors create and update, admins publish, delete and hold the keys;
  // enrollment is public (the key is the credential); only an enrolled agent beats.
  "Query.agents": {
    operation: () => ({ query: "query { agents(first: 5) { nodes { id } pageInfo { hasNextPage } } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.agent": {
    operation: async (ctx) => ({ query: "query ($id: ID!) { agent(id: $id) { id } }", variables: { id: await matrixAgent(ctx) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Query.enrollmentKeys": {
    operation: () => ({ query: "query { enrollmentKeys { id prefix } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.createAgent": {
    operation: () => ({ query: 'mutation { createAgent(input: { name: "m", type: "matrix" }) { id } }' }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.updateAgent": {
    operation: async (ctx) => ({
      query: 'mutation ($id: ID!) { updateAgent(input: { id: $id, expectedVersion: 1, name: "renamed" }) { id version } }',
      variables: { id: await matrixAgent(ctx, true) },
    }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: allow,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.publishAgent": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { publishAgent(id: $id) { id status } }", variables: { id: await matrixAgent(ctx, true) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.deleteAgent": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { deleteAgent(id: $id) }", variables: { id: await matrixAgent(ctx, true) } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.createEnrollmentKey": {
    operation: () => ({ query: "mutation { createEnrollmentKey(input: {}) { id key } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.revokeEnrollmentKey": {
    operation: async (ctx) => ({ query: "mutation ($id: ID!) { revokeEnrollmentKey(id: $id) }", variables: { id: (await matrixKey(ctx)).id } }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.pruneEnrollmentKeys": {
    operation: () => ({ query: "mutation { pruneEnrollmentKeys }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: allow,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.enrollAgent": {
    // Public: the enrollment key is the credential, whoever (if anyone) sends it.
    operation: async (ctx) => ({
      query: "mutation ($input: EnrollAgentInput!) { enrollAgent(input: $input) { agentId accessToken refreshToken } }",
      variables: { input: { key: (await matrixKey(ctx)).key, hostname: "matrix-host", os: "linux", arch: "x64", agentVersion: "1" } },
    }),
    // prettier-ignore
    expect: {
      anonymous: allow,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
  "Mutation.agentHeartbeat": {
    operation: () => ({ query: "mutation { agentHeartbeat(input: {}) { agentId } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: FORBIDDEN,
      editor: FORBIDDEN,
      admin: FORBIDDEN,
      service: FORBIDDEN,
      platform: FORBIDDEN,
      "viewer+audit:read": FORBIDDEN,
      "admin+tenant:read": FORBIDDEN,
    },
  },
  "Mutation.startSession": {
    // Any signed-in principal, for a session of its own grant (nothing is revoked: the token presented lives on).
    operation: () => ({ query: "mutation { startSession { tokenId accessToken refreshToken } }" }),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
  "Mutation.endSession": {
    // Any signed-in principal ends its own session: each presents a session it started for this row.
    operation: () => ({ query: "mutation { endSession }" }),
    presenting: ({ app }, token) => sessionOf(app, token),
    // prettier-ignore
    expect: {
      anonymous: UNAUTHENTICATED,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
  "Mutation.refreshSession": {
    // Public: the refresh token is the credential, whoever (if anyone) sends it.
    operation: async ({ app, adminToken }) => ({
      query: "mutation ($refreshToken: String!) { refreshSession(refreshToken: $refreshToken) { tokenId accessToken refreshToken } }",
      variables: { refreshToken: await freshRefreshToken(app, adminToken) },
    }),
    // prettier-ignore
    expect: {
      anonymous: allow,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
  "Mutation.redeemSignInCode": {
    // Public: the one-time code (keyplane console link) is the credential, whoever (if anyone) sends it.
    operation: async ({ app, tenantId }) => {
      const { code } = await mintSignInCode(app.kp.deps, { tenantId });
      registerSecret(code);
      return { query: "mutation ($code: String!) { redeemSignInCode(code: $code) { tokenId accessToken refreshToken } }", variables: { code } };
    },
    // prettier-ignore
    expect: {
      anonymous: allow,
      viewer: allow,
      editor: allow,
      admin: allow,
      service: allow,
      platform: allow,
      "viewer+audit:read": allow,
      "admin+tenant:read": allow,
    },
  },
};

async function tokenIdOf(app: TestApp, token: string): Promise<string> {
  const res = await app.gql("{ me { tokenId } }", {}, { token });
  expect(res.errors).toBeUndefined();
  return res.data.me.tokenId;
}

async function freshRefreshToken(app: TestApp, adminToken: string): Promise<string> {
  const res = await app.gql(
    'mutation { issueServiceToken(input: { subject: "matrix-refresh", refreshable: true }) { accessToken refreshToken } }',
    {},
    { token: adminToken },
  );
  expect(res.errors).toBeUndefined();
  registerSecret(res.data.issueServiceToken.accessToken);
  registerSecret(res.data.issueServiceToken.refreshToken);
  return res.data.issueServiceToken.refreshToken;
}

/** The access token of a session started with the token given: the same principal, its own family. */
async function sessionOf(app: TestApp, token: string): Promise<string> {
  const res = await app.gql("mutation { startSession { accessToken refreshToken } }", {}, { token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  registerSecret(res.data.startSession.accessToken);
  registerSecret(res.data.startSession.refreshToken);
  return res.data.startSession.accessToken;
}

/**
 * Runs a subscription over graphql-ws (the token in connectionParams) and answers like `gql`: the first
 * result, or the operation's errors. A socket closed with 4401 (no token) reads as UNAUTHENTICATED;
 * any other close code as CLOSED_<code>.
 */
async function subscribeOnce(app: TestApp, op: Operation, token: string | undefined): Promise<Omit<GraphQLResponse, "status" | "headers">> {
  const client = createClient({
    url: `${app.url.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
  try {
    return await new Promise((resolve) => {
      const unsubscribe = client.subscribe(
        { query: op.query, variables: op.variables ?? {} },
        {
          next: (result) => {
            resolve({ data: result.data ?? null, errors: result.errors as GraphQLResponse["errors"] });
            unsubscribe();
          },
          error: (error: unknown) => {
            if (Array.isArray(error)) return resolve({ data: null, errors: error });
            const code = (error as { code?: number } | null)?.code;
            resolve({ data: null, errors: [{ message: `socket closed ${code}`, extensions: { code: code === 4401 ? UNAUTHENTICATED : `CLOSED_${code}` } }] });
          },
          complete: () => resolve({ data: null }),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

/** Secrets a successful operation hands back, registered for the suite's log scan. */
function registerReturnedSecrets(value: unknown): void {
  if (value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value)) {
    if ((k === "accessToken" || k === "refreshToken" || k === "token" || k === "key") && typeof v === "string") registerSecret(v);
    else registerReturnedSecrets(v);
  }
}

describe("authorization matrix", () => {
  const fields = rootFields(schema);
  let app: TestApp;
  let world: ProviderWorld;
  let ctx: MatrixContext;
  const tokens = {} as Record<Principal, string | undefined>;

  beforeAll(async () => {
    world = await startProviderWorld();
    app = await createTestApp({
      name: "authorization",
      // Log streams to 127.0.0.1 (allowed here), as many as the rows make; each is paused once made.
      env: { ...world.env, ENROLL_ATTEMPTS_PER_MINUTE: "1000", LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1", LOG_STREAM_MAX_PER_TENANT: "1000" },
    });
    const seeded = await app.seedTenant({ tier: "enterprise" });
    const { tenantId } = seeded;
    const newInstallation = async () => {
      const installed = await browseInstall(app, "slack", seeded.tokens.editor);
      expect(installed.status, JSON.stringify(installed.body)).toBe(200);
      return installed.body.installation.id as string;
    };
    const rexOrg = `matrix-${unique()}`;
    world.github.setNextInstall({
      account: { login: rexOrg, type: "Organization" },
      repositories: ["api", "web"],
      permissions: { contents: "read", metadata: "read" },
    });
    const rex = await browseInstall(app, "github", seeded.tokens.editor, { query: "app=rex" });
    expect(rex.status, JSON.stringify(rex.body)).toBe(200);
    const policy = await app.gql(
      "mutation ($input: TokenPolicyInput!) { setTokenPolicy(input: $input) { name } }",
      { input: { name: "matrix", app: "rex", roles: ["admin", "service"], repositories: [`${rexOrg}/*`], permissions: { contents: "read" } } },
      { token: seeded.tokens.admin },
    );
    expect(policy.errors).toBeUndefined();
    const serviceLogin = `matrix-svc-${unique()}`;
    world.github.addInstallation({
      appId: world.githubApp.appId,
      account: { login: serviceLogin, type: "User" },
      repositories: [],
      repositorySelection: "all",
      permissions: { administration: "write", contents: "write", metadata: "read" },
    });
    const linkServiceIdentity = async () => {
      const linked = await browseLink(app, world.github, seeded.tokens.service, serviceLogin);
      expect(linked.status, JSON.stringify(linked.body)).toBe(200);
      return linked.body.identity.id as string;
    };
    // Every principal that may link has an identity, so its identityEvents has something to replay.
    for (const role of ["viewer", "editor", "admin"] as const) {
      const linked = await browseLink(app, world.github, seeded.tokens[role], `matrix-${role}-${unique()}`);
      expect(linked.status, JSON.stringify(linked.body)).toBe(200);
    }
    await linkServiceIdentity();
    ctx = { app, tenantId, adminToken: seeded.tokens.admin, newInstallation, rexOrg, linkServiceIdentity, serviceLogin, world };
    tokens.anonymous = undefined;
    tokens.viewer = seeded.tokens.viewer;
    tokens.editor = seeded.tokens.editor;
    tokens.admin = seeded.tokens.admin;
    tokens.service = seeded.tokens.service;
    tokens.platform = await app.platformToken();
    tokens["viewer+audit:read"] = await app.mintToken({ tenantId, roles: ["viewer"], scopes: ["audit:read"], subject: `auditor@${tenantId}` });
    tokens["admin+tenant:read"] = await app.mintToken({ tenantId, roles: ["admin"], scopes: ["tenant:read"], subject: `narrow-admin@${tenantId}` });
  });
  afterAll(async () => {
    await app?.close();
    await world?.close();
  });

  it("has exactly one row per root field of the schema", () => {
    const inSchema = fields.map((f) => f.key).sort();
    const inTable = Object.keys(MATRIX).sort();
    expect(
      inSchema.filter((k) => !inTable.includes(k)),
      "root fields without a row in MATRIX (add one with the expected outcome per principal)",
    ).toEqual([]);
    expect(
      inTable.filter((k) => !inSchema.includes(k)),
      "rows of MATRIX for fields that are not in the schema",
    ).toEqual([]);
  });

  for (const field of fields) {
    describe(field.key, () => {
      for (const principal of PRINCIPALS) {
        const expected = MATRIX[field.key]?.expect[principal];
        it(`${principal} → ${expected ?? "(no row)"}`, async () => {
          const row = MATRIX[field.key];
          if (!row) throw new Error(`no row in MATRIX for ${field.key}`);
          const op = await row.operation(ctx);
          const shared = tokens[principal];
          const token = row.presenting && shared ? await row.presenting(ctx, shared) : shared;
          if (field.rootType === "Subscription") {
            const res = await subscribeOnce(app, op, token);
            if (expected === allow) {
              expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
              expect(res.data?.[field.name]).toBeTruthy();
              registerReturnedSecrets(res.data);
            } else {
              expect(
                res.errors?.map((e) => e.extensions?.code),
                JSON.stringify(res.errors),
              ).toEqual([expected]);
              expect(res.data?.[field.name] ?? null).toBeNull();
            }
            return;
          }
          const res: GraphQLResponse = await app.gql(op.query, op.variables ?? {}, { token });
          if (expected === allow) {
            expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
            expect(res.data?.[field.name]).toBeTruthy();
            registerReturnedSecrets(res.data);
          } else {
            expect(
              res.errors?.map((e) => e.extensions?.code),
              JSON.stringify(res.errors),
            ).toEqual([expected]);
            expect(res.data?.[field.name] ?? null).toBeNull();
            if (expected === UNAUTHENTICATED) expect(res.status).toBe(401);
          }
        });
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// What a token hands on: a service token issued by a narrowed token holds no permission the
// issuing token lacks.
// ---------------------------------------------------------------------------------------------

describe("issuing service tokens", () => {
  let app: TestApp;
  let tenantId: string;
  beforeAll(async () => {
    app = await createTestApp({ name: "authorization-issue" });
    ({ tenantId } = await app.seedTenant());
  });
  afterAll(() => app?.close());

  async function permissionsOf(token: string): Promise<string[]> {
    const res = await app.gql("{ me { permissions } }", {}, { token });
    expect(res.errors).toBeUndefined();
    return res.data.me.permissions;
  }

  it("an admin hands on what it holds: a service token with scope audit:read reads the audit log", async () => {
    const admin = await app.mintToken({ tenantId, roles: ["admin"], subject: `full-admin@${tenantId}` });
    const issued = await app.gql(
      'mutation { issueServiceToken(input: { subject: "auditor-bot", scopes: ["audit:read"] }) { accessToken } }',
      {},
      { token: admin },
    );
    expect(issued.errors).toBeUndefined();
    const token: string = issued.data.issueServiceToken.accessToken;
    registerSecret(token);
    expect(await permissionsOf(token)).toEqual(["audit:read"]);
    expect((await app.gql("{ auditLog(first: 1) { edges { cursor } } }", {}, { token })).errors).toBeUndefined();
  });

  it.each([
    ["scopes [audit:read]", ["audit:read"]],
    ["no scopes", []],
  ])("a token narrowed to token:issue mints no service token that can do more than it (%s)", async (_label, scopes) => {
    const issuer = await app.mintToken({ tenantId, roles: ["admin"], scopes: ["token:issue"], subject: `issuer-${scopes.length}@${tenantId}` });
    const issuerPermissions = await permissionsOf(issuer);
    expect(issuerPermissions).toEqual(["token:issue"]);

    const issued = await app.gql(
      'mutation ($scopes: [String!]) { issueServiceToken(input: { subject: "escalate", scopes: $scopes }) { accessToken } }',
      { scopes },
      { token: issuer },
    );
    if (issued.errors) {
      // Refusing the request is a fine answer.
      expect(["FORBIDDEN", "BAD_USER_INPUT"]).toContain(issued.errors[0]?.extensions?.code);
      return;
    }
    const token: string = issued.data.issueServiceToken.accessToken;
    registerSecret(token);
    const gained = (await permissionsOf(token)).filter((p) => !issuerPermissions.includes(p));
    expect(gained, "permissions the issued token holds and its issuer lacks").toEqual([]);
    if (scopes.includes("audit:read")) {
      const read = await app.gql("{ auditLog(first: 1) { edges { cursor } } }", {}, { token });
      expect(read.errors?.[0]?.extensions?.code, "the issued token reads the audit log its issuer may not").toBe(FORBIDDEN);
    }
  });
});
