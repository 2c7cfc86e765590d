import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withPlatform } from "../../src/store/db.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

const ISSUE = "mutation($s: String!) { issueServiceToken(input: {subject: $s}) { tokenId accessToken } }";

describe("Idempotency-Key on mutations", () => {
  let app: TestApp;
  let tenant: SeededTenant;
  beforeAll(async () => {
    app = await createTestApp({ name: "idempotency" });
    tenant = await app.seedTenant();
  });
  afterAll(() => app.close());

  const eventCount = () =>
    withPlatform(app.database.db, (trx) => trx.selectFrom("events").select((eb) => eb.fn.countAll<number>().as("n")).where("tenant_id", "=", tenant.tenantId).executeTakeFirstOrThrow()).then((r) => Number(r.n));

  const issue = async (key: string, subject: string, token = tenant.tokens.admin) => {
    const res = await app.gql(ISSUE, { s: subject }, { token, headers: { "idempotency-key": key } });
    registerSecret(res.data?.issueServiceToken?.accessToken);
    return res;
  };

  it("returns the first result to a repeated request and appends nothing", async () => {
    const key = randomUUID();
    const first = await issue(key, "deployer");
    expect(first.errors).toBeUndefined();
    const before = await eventCount();
    const again = await issue(key, "deployer");
    expect(again.data).toEqual(first.data);
    expect(await eventCount()).toBe(before);
  });

  it("answers CONFLICT when the same key comes with a different request, and appends nothing", async () => {
    const key = randomUUID();
    await issue(key, "one");
    const before = await eventCount();
    const other = await issue(key, "two");
    expect(other.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect(other.data?.issueServiceToken ?? null).toBeNull();
    expect(await eventCount()).toBe(before);
  });

  it("keeps keys per principal: another principal's identical key is a new request", async () => {
    const key = randomUUID();
    const mine = await issue(key, "shared");
    const otherAdmin = await app.mintToken({ tenantId: tenant.tenantId, roles: ["admin"], subject: "second-admin" });
    const theirs = await issue(key, "shared", otherAdmin);
    expect(theirs.errors).toBeUndefined();
    expect(theirs.data.issueServiceToken.tokenId).not.toBe(mine.data.issueServiceToken.tokenId);
  });

  it("does not keep a failed request, so it can be corrected and retried under the same key", async () => {
    const key = randomUUID();
    const bad = await app.gql("mutation { issueServiceToken(input: {subject: \"x\", ttlSeconds: 1}) { tokenId } }", {}, { token: tenant.tokens.admin, headers: { "idempotency-key": key } });
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const good = await issue(key, "x");
    expect(good.errors).toBeUndefined();
  });

  it("stores no token in plaintext", async () => {
    const key = randomUUID();
    const res = await issue(key, "secretive");
    const rows = await withPlatform(app.database.db, (trx) => trx.selectFrom("idempotency_keys").selectAll().execute());
    const dump = JSON.stringify(rows);
    expect(rows.length).toBeGreaterThan(0);
    expect(dump).not.toContain(res.data.issueServiceToken.accessToken);
    expect(dump).not.toContain(key);
  });

  it("refuses a malformed key", async () => {
    const res = await issue("short", "x");
    expect(res.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });
});
