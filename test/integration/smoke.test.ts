import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../testkit/testApp.ts";

describe("a first query", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "smoke" });
  });
  afterAll(() => app.close());

  it("answers me and tenant for an admin of a seeded tenant", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const res = await app.gql("{ me { subject tenantId roles } tenant { id tier } }", {}, { token: tokens.admin });
    expect(res.errors).toBeUndefined();
    expect(res.data.me).toMatchObject({ tenantId, roles: ["admin"] });
    expect(res.data.tenant).toEqual({ id: tenantId, tier: "free" });
  });
});
