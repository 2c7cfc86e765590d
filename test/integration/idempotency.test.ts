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
    withPlatform(app.database.db, (trx) =>
      trx
        .selectFrom("events")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("tenant_id", "=", tenant.tenantId)
        .executeTakeFirstOrThrow(),
    ).then((r) => Number(r.n));

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
    const bad = await app.gql(
      'mutation { issueServiceToken(input: {subject: "x", ttlSeconds: 1}) { tokenId } }',
      {},
      { token: tenant.tokens.admin, headers: { "idempotency-key": key } },
    );
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

  it("replays only to the principal that made the key: a viewer token of the admin's subject runs, and is refused", async () => {
    const key = randomUUID();
    const subject = "shared-person";
    const admin = await app.mintToken({ tenantId: tenant.tenantId, roles: ["admin"], subject });
    const viewer = await app.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"], subject });
    const first = await issue(key, "replay-target", admin);
    expect(first.errors).toBeUndefined();
    const before = await eventCount();
    const stolen = await issue(key, "replay-target", viewer);
    expect(stolen.data?.issueServiceToken ?? null).toBeNull();
    expect(stolen.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(JSON.stringify(stolen)).not.toContain(first.data.issueServiceToken.accessToken);
    // The refusal is audited (recorded after the request's transaction, which kept nothing else).
    const denied = await withPlatform(app.database.db, (trx) =>
      trx
        .selectFrom("events")
        .select(["event_type", "metadata"])
        .where("tenant_id", "=", tenant.tenantId)
        .orderBy("tenant_seq", "desc")
        .limit(1)
        .executeTakeFirstOrThrow(),
    );
    expect(denied.event_type).toBe("access.denied");
    expect(await eventCount()).toBe(before + 1);
    // A token with the same subject and roles is the same principal: it gets the replay.
    const sameAdmin = await app.mintToken({ tenantId: tenant.tenantId, roles: ["admin"], subject });
    expect((await issue(key, "replay-target", sameAdmin)).data).toEqual(first.data);
  });

  it("is all or nothing: when one field fails, the writes of the others roll back too, and the key stays free", async () => {
    const key = randomUUID();
    const query = (ttl: number) =>
      `mutation { ok: issueServiceToken(input: { subject: "partial" }) { tokenId } other: issueServiceToken(input: { subject: "x", ttlSeconds: ${ttl} }) { tokenId } }`;
    const before = await eventCount();
    const failed = await app.gql(query(1), {}, { token: tenant.tokens.admin, headers: { "idempotency-key": key } });
    expect(failed.data).toBeNull();
    expect(failed.errors?.map((e) => [e.path, e.extensions?.code])).toEqual([[["other"], "BAD_USER_INPUT"]]);
    // Without a key the first token would have been issued (and its answer lost in the null data).
    expect(await eventCount()).toBe(before);
    const corrected = await app.gql(query(600), {}, { token: tenant.tokens.admin, headers: { "idempotency-key": key } });
    expect(corrected.errors).toBeUndefined();
    expect(await eventCount()).toBe(before + 2);
  });

  it("runs concurrent requests with one key once: one is answered, the other replays it or is told it is in progress", async () => {
    const key = randomUUID();
    const before = await eventCount();
    const answers = await Promise.all([issue(key, "racer"), issue(key, "racer"), issue(key, "racer")]);
    const issued = answers.filter((a) => a.data?.issueServiceToken);
    expect(issued.length).toBeGreaterThanOrEqual(1);
    expect(new Set(issued.map((a) => a.data.issueServiceToken.tokenId)).size).toBe(1);
    for (const other of answers.filter((a) => !a.data?.issueServiceToken)) expect(other.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect(await eventCount()).toBe(before + 1);
  });

  it("refuses a malformed key", async () => {
    const res = await issue("short", "x");
    expect(res.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });
});
