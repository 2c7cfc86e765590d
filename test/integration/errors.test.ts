import { readdirSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withPlatform } from "../../src/store/db.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { createTestDatabase } from "../testkit/testDatabase.ts";

async function countEvents(app: TestApp): Promise<number> {
  const row = await withPlatform(app.database.db, (trx) =>
    trx
      .selectFrom("events")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow(),
  );
  return Number(row.n);
}

function codesOf(res: GraphQLResponse): unknown[] {
  return (res.errors ?? []).map((e) => e.extensions?.code);
}

/** POST raw bytes to /graphql, with a Content-Length or chunked (no length announced). */
function postRaw(url: string, body: string, options: { chunked: boolean; token?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const bytes = Buffer.from(body);
    const req = httpRequest(`${url}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(options.chunked ? { "transfer-encoding": "chunked" } : { "content-length": String(bytes.length) }),
      },
    });
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    // The server may answer and close before it read the whole body.
    req.on("error", (error) => {
      if (!answered) reject(error);
    });
    if (options.chunked) {
      for (let i = 0; i < bytes.length; i += 512) req.write(bytes.subarray(i, i + 512));
    } else {
      req.write(bytes);
    }
    req.end();
  });
}

describe("errors a caller sees", () => {
  let app: TestApp;
  let tenant: SeededTenant;
  let platform: string;

  beforeAll(async () => {
    app = await createTestApp({ name: "errors" });
    tenant = await app.seedTenant();
    platform = await app.platformToken();
  });
  afterAll(() => app?.close());

  describe("bad requests are BAD_USER_INPUT and append nothing", () => {
    let before: number;
    beforeAll(async () => {
      before = await countEvents(app);
    });

    it("a syntax error", async () => {
      const res = await app.gql("{ me { subject ", {}, { token: tenant.tokens.admin });
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toMatch(/Syntax Error/);
    });

    it("an unknown field", async () => {
      const res = await app.gql("{ me { subject } nope }", {}, { token: tenant.tokens.admin });
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toContain("nope");
      expect(res.data ?? null).toBeNull();
    });

    it("a variable of the wrong type", async () => {
      const res = await app.gql("query ($first: Int!) { auditLog(first: $first) { edges { cursor } } }", { first: "ten" }, { token: tenant.tokens.admin });
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toContain("first");
    });

    it("createTenant with an id that is not a slug names the field id", async () => {
      const res = await app.gql(
        "mutation ($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
        { input: { id: "Not A Slug!", name: "Bad slug" } },
        { token: platform },
      );
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toMatch(/\bid\b/);
      expect(res.errors?.[0]?.extensions?.field).toBe("id");
    });

    it("createTenant with an empty name names the field name", async () => {
      const res = await app.gql(
        "mutation ($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
        { input: { id: `ok-${randomBytes(4).toString("hex")}`, name: "   " } },
        { token: platform },
      );
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toMatch(/\bname\b/);
    });

    it("issueServiceToken with ttlSeconds 5 names ttlSeconds", async () => {
      const res = await app.gql(
        'mutation { issueServiceToken(input: { subject: "short-lived", ttlSeconds: 5 }) { tokenId } }',
        {},
        { token: tenant.tokens.admin },
      );
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toContain("ttlSeconds");
    });

    it.each([0, -1, 101, 1000])("auditLog(first: %i)", async (first) => {
      const res = await app.gql("query ($first: Int!) { auditLog(first: $first) { edges { cursor } } }", { first }, { token: tenant.tokens.admin });
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toContain("first");
    });

    it.each([
      ["garbage", "not base64 of a cursor"],
      [Buffer.from("other:12").toString("base64url"), "a cursor of another kind"],
      [Buffer.from("seq:-1").toString("base64url"), "a negative position"],
      ["", "an empty string"],
    ])("auditLog(after: %j) — %s", async (after) => {
      const res = await app.gql("query ($after: String) { auditLog(first: 5, after: $after) { edges { cursor } } }", { after }, { token: tenant.tokens.admin });
      expect(codesOf(res), JSON.stringify(res.errors)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.message).toContain("after");
    });

    it("a valid cursor is accepted (the refusals above are about the cursor, not the query)", async () => {
      const first = await app.gql("{ auditLog(first: 1) { pageInfo { endCursor } } }", {}, { token: tenant.tokens.admin });
      expect(first.errors).toBeUndefined();
      const next = await app.gql(
        "query ($after: String) { auditLog(first: 5, after: $after) { edges { cursor } } }",
        { after: first.data.auditLog.pageInfo.endCursor },
        { token: tenant.tokens.admin },
      );
      expect(next.errors).toBeUndefined();
    });

    it("none of them appended an event", async () => {
      expect(await countEvents(app)).toBe(before);
    });
  });

  describe("health probes", () => {
    it("/healthz answers 200", async () => {
      const res = await fetch(`${app.url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    });

    it("/readyz answers 200 with the database and the migrations ok", async () => {
      const res = await fetch(`${app.url}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "ready", checks: { database: "ok", migrations: "ok" } });
    });
  });
});

describe("a request body over MAX_BODY_BYTES", () => {
  const LIMIT = 2048;
  let app: TestApp;
  let platform: string;

  beforeAll(async () => {
    app = await createTestApp({ name: "errors-body-limit", env: { MAX_BODY_BYTES: String(LIMIT) } });
    platform = await app.platformToken();
  });
  afterAll(() => app?.close());

  /** A createTenant request padded (with an unused variable) to about `size` bytes. */
  function createTenantBody(id: string, size: number): string {
    const body = (pad: string) =>
      JSON.stringify({
        query: "mutation ($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
        variables: { input: { id, name: "Body limit" }, pad },
      });
    return body("x".repeat(Math.max(0, size - body("").length)));
  }

  async function tenantExists(id: string): Promise<boolean> {
    const res = await app.gql("{ tenants { id } }", {}, { token: platform });
    expect(res.errors).toBeUndefined();
    return res.data.tenants.some((t: { id: string }) => t.id === id);
  }

  it("under the limit, the request runs", async () => {
    const id = `small-${randomBytes(4).toString("hex")}`;
    const res = await postRaw(app.url, createTenantBody(id, LIMIT - 100), { chunked: false, token: platform });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).data).toEqual({ createTenant: { id } });
  });

  it("with a Content-Length over the limit: 413, and the mutation does not run", async () => {
    const id = `big-${randomBytes(4).toString("hex")}`;
    const res = await postRaw(app.url, createTenantBody(id, LIMIT * 4), { chunked: false, token: platform });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(await tenantExists(id)).toBe(false);
  });

  it("sent chunked (no Content-Length) over the limit: refused (413, or 411 Length Required), and the mutation does not run", async () => {
    const id = `chunked-${randomBytes(4).toString("hex")}`;
    const res = await postRaw(app.url, createTenantBody(id, LIMIT * 4), { chunked: true, token: platform });
    expect([411, 413], res.body.slice(0, 300)).toContain(res.status);
    expect(JSON.parse(res.body).errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(await tenantExists(id)).toBe(false);
  });
});

describe("/readyz on a database that was not migrated", () => {
  let app: TestApp;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    database = await createTestDatabase({ migrate: false });
    app = await createTestApp({ database, name: "errors-unmigrated", env: { KEYPLANE_MIGRATE_ON_START: "false" } });
  });
  afterAll(async () => {
    await app?.close();
    await database?.close();
  });

  it("answers 503 naming every pending migration", async () => {
    const migrations = readdirSync(fileURLToPath(new URL("../../migrations/", import.meta.url)))
      .filter((f) => f.endsWith(".sql"))
      .map((f) => f.replace(/\.sql$/, ""));
    expect(migrations.length).toBeGreaterThan(0);

    const res = await fetch(`${app.url}/readyz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe("not ready");
    expect(body.checks.database).toBe("ok");
    expect(body.checks.migrations).toMatch(/^pending: /);
    for (const name of migrations) expect(body.checks.migrations).toContain(name);
  });

  it("while /healthz still answers 200 (the process is alive)", async () => {
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });
});
