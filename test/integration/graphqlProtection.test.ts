import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { operationHash } from "../../src/http/graphqlProtection.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Hostile documents, each refused before execution with BAD_USER_INPUT and a reason naming the
// limit: depth, aliases, directives, tokens, cost, page size, batch size, body size; introspection
// and field suggestions in production; persisted-operations-only mode.

let app: TestApp;
let t: SeededTenant;

beforeAll(async () => {
  app = await createTestApp({ name: "graphql-protection" });
  t = await app.seedTenant({ tier: "enterprise" });
});
afterAll(() => app?.close());

async function post(target: TestApp, body: unknown, token?: string) {
  const res = await fetch(`${target.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}
const reasons = (body: any): string[] => (Array.isArray(body) ? body : [body]).flatMap((b: any) => (b.errors ?? []).map((e: any) => e.extensions?.reason));

describe("hostile documents", () => {
  it("too deep: MAX_DEPTH_EXCEEDED", async () => {
    const deep = "{ a " + "{ b ".repeat(11) + "}".repeat(12);
    const res = await post(app, { query: deep }, t.tokens.viewer);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors.find((e: any) => e.extensions.reason === "MAX_DEPTH_EXCEEDED")).toMatchObject({
      message: expect.stringContaining("depth limit of 10"),
      extensions: { code: "BAD_USER_INPUT" },
    });
  });

  it("too many aliases: MAX_ALIASES_EXCEEDED", async () => {
    const query = "{ " + Array.from({ length: 16 }, (_, i) => `a${i}: me { subject }`).join(" ") + " }";
    const res = await post(app, { query }, t.tokens.viewer);
    expect(res.body.data).toBeUndefined();
    expect(reasons(res.body)).toContain("MAX_ALIASES_EXCEEDED");
  });

  it("too many directives: MAX_DIRECTIVES_EXCEEDED", async () => {
    const query = "{ me { subject " + "@include(if: true) ".repeat(21) + "} }";
    const res = await post(app, { query }, t.tokens.viewer);
    expect(res.body.data).toBeUndefined();
    expect(reasons(res.body)).toContain("MAX_DIRECTIVES_EXCEEDED");
  });

  it("too many tokens: MAX_TOKENS_EXCEEDED, before the document is built", async () => {
    const query = "{ me { " + "subject ".repeat(2100) + "} }";
    const res = await post(app, { query }, t.tokens.viewer);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors[0]).toMatchObject({
      message: "Token limit of 2000 exceeded.",
      extensions: { code: "BAD_USER_INPUT", reason: "MAX_TOKENS_EXCEEDED" },
    });
  });

  it("too costly: QUERY_COST_EXCEEDED with the cost, before anything runs", async () => {
    // 1 connection + 100 agents + 100 × 100 history entries
    const query = "{ agents(first: 100) { nodes { id history(first: 100) { type } } } }";
    const res = await post(app, { query }, t.tokens.viewer);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "QUERY_COST_EXCEEDED", cost: { requested: 10101, maximum: 1000 } });
  });

  it("a page over 100: PAGE_SIZE_INVALID before any resolver runs", async () => {
    const res = await post(app, { query: "query ($n: Int!) { tasks(first: $n) { nodes { id } } }", variables: { n: 500 } }, t.tokens.viewer);
    expect(res.body.errors[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "PAGE_SIZE_INVALID", field: "tasks" });
    expect(res.body.data).toBeUndefined();
  });

  it("a connection without first is refused by the schema itself", async () => {
    const res = await post(app, { query: "{ installations { nodes { id } } }" }, t.tokens.viewer);
    expect(res.body.errors[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "GRAPHQL_VALIDATION_FAILED" });
  });

  it("batches: up to 5 operations run; more are refused whole with 413 BATCH_TOO_LARGE", async () => {
    const ok = await post(app, [{ query: "{ me { subject } }" }, { query: "{ tenant { id } }" }], t.tokens.viewer);
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual([{ data: { me: { subject: expect.any(String) } } }, { data: { tenant: { id: t.tenantId } } }]);
    const many = await post(
      app,
      Array.from({ length: 6 }, () => ({ query: "{ me { subject } }" })),
      t.tokens.viewer,
    );
    expect(many.status).toBe(413);
    expect(reasons(many.body)).toContain("BATCH_TOO_LARGE");
  });

  it("a body over MAX_BODY_BYTES: 413 before it is read", async () => {
    const small = await createTestApp({ name: "graphql-protection-body", database: app.database, env: { MAX_BODY_BYTES: "1024" } });
    try {
      const res = await post(small, { query: `{ me { subject } } # ${"x".repeat(2000)}` }, t.tokens.viewer);
      expect(res.status).toBe(413);
      expect(res.body.errors[0].extensions.code).toBe("BAD_USER_INPUT");
    } finally {
      await small.close();
    }
  });

  it("with limits on, reports each operation's cost in extensions.cost; a batch counts once against the request limits, each operation against the cost budget", async () => {
    const limited = await createTestApp({ name: "graphql-protection-batch", database: app.database, env: { RATE_LIMITS: "on" } });
    try {
      const u = await limited.seedTenant({ tier: "pro" });
      const one = await post(limited, { query: "{ me { subject } tasks(first: 10) { nodes { id } } }" }, u.tokens.viewer);
      expect(one.body.errors).toBeUndefined();
      // me (1) + tasks (1) + 10 tasks
      expect(one.body.extensions.cost).toMatchObject({ requested: 12, maximum: 1000, budget: 15000, remaining: 14988, resetSeconds: expect.any(Number) });
      // The batch is the tenant's second request: far under the burst cap (pro: 85 in ten seconds).
      const res = await post(limited, [{ query: "{ me { subject } }" }, { query: "{ tenant { id } }" }, { query: "{ __typename }" }], u.tokens.viewer);
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit")).toContain('"tenant";r=298;');
      expect(res.headers.get("ratelimit")).toContain('"cost";r=14986;');
    } finally {
      await limited.close();
    }
  });
});

describe("in production", () => {
  let prod: TestApp;
  beforeAll(async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    prod = await createTestApp({
      name: "graphql-protection-prod",
      database: app.database,
      env: {
        NODE_ENV: "production",
        KEYPLANE_SIGNING_KEY: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      },
    });
  });
  afterAll(() => prod?.close());

  it("refuses introspection (INTROSPECTION_DISABLED) but answers __typename", async () => {
    const token = await prod.mintToken({ tenantId: t.tenantId, roles: ["viewer"] });
    const res = await post(prod, { query: "{ __schema { types { name } } }" }, token);
    expect(res.body.errors[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "INTROSPECTION_DISABLED" });
    expect((await post(prod, { query: "{ __typename me { subject } }" }, token)).body.data.__typename).toBe("Query");
  });

  it("suggests no field names; development does", async () => {
    const token = await prod.mintToken({ tenantId: t.tenantId, roles: ["viewer"] });
    const res = await post(prod, { query: "{ me { subjec } }" }, token);
    expect(res.body.errors[0].message).not.toMatch(/Did you mean/);
    const dev = await post(app, { query: "{ me { subjec } }" }, t.tokens.viewer);
    expect(dev.body.errors[0].message).toMatch(/Did you mean "subject"\?/);
  });
});

describe("persisted-operations-only mode", () => {
  let persisted: TestApp;
  let dir: string;
  const allowed = "query Me { me { subject } }";
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "keyplane-persisted-"));
    const file = path.join(dir, "operations.json");
    writeFileSync(file, JSON.stringify([operationHash(allowed)]));
    persisted = await createTestApp({
      name: "graphql-protection-persisted",
      database: app.database,
      env: { GRAPHQL_PERSISTED_OPERATIONS_ONLY: "true", GRAPHQL_PERSISTED_OPERATIONS_FILE: file },
    });
  });
  afterAll(async () => {
    await persisted?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs only listed documents for people's tokens; services and agents are not bound by the list", async () => {
    const user = await persisted.mintToken({ tenantId: t.tenantId, roles: ["viewer"] });
    expect((await post(persisted, { query: allowed }, user)).body.data.me.subject).toBeTruthy();
    const other = await post(persisted, { query: "{ tenant { id } }" }, user);
    expect(other.body.errors[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "PERSISTED_OPERATION_REQUIRED" });
    const service = await persisted.mintToken({ tenantId: t.tenantId, roles: ["service"] });
    expect((await post(persisted, { query: "{ tenant { id } }" }, service)).body.data.tenant.id).toBe(t.tenantId);
  });
});
