import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { waitFor } from "../testkit/waitFor.ts";

describe("logs", () => {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  let app: TestApp;
  let tenant: SeededTenant;
  beforeAll(async () => {
    const logger = createLogger({
      level: "debug",
      destination: {
        write: (s: string) => {
          raw.push(s);
          lines.push(JSON.parse(s));
        },
      },
    });
    app = await createTestApp({ logger });
    tenant = await app.seedTenant();
  });
  afterAll(() => app.close());

  it("write one JSON line per request with its request id, tenant and actor", async () => {
    const res = await fetch(`${app.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tenant.tokens.viewer}`, "x-request-id": "log-test-1" },
      body: JSON.stringify({ query: "{ me { subject } }" }),
    });
    expect(res.headers.get("x-request-id")).toBe("log-test-1");
    await res.text();
    // The request line is written once the response has finished, which may be after the client read it.
    const line = await waitFor("the request line of log-test-1", () => lines.find((l) => l.requestId === "log-test-1" && l.msg === "request"));
    expect(line).toMatchObject({ level: "info", tenantId: tenant.tenantId, actor: `viewer@${tenant.tenantId}`, method: "POST", path: "/graphql", status: 200 });
    expect(typeof line!.durationMs).toBe("number");
  });

  it("give a request without an id a fresh one, and tag every line written while serving it", async () => {
    const res = await app.gql("{ me { subject } }", {}, { token: "not-a-jwt" });
    expect(res.status).toBe(401);
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await waitFor(`the request line of ${id}`, () => lines.some((l) => l.requestId === id && l.msg === "request"));
    const tagged = lines.filter((l) => l.requestId === id);
    // The refusal's own line (auth failure) and the request line.
    expect(tagged.length).toBeGreaterThanOrEqual(2);
    expect(tagged.every((l) => l.service === "keyplane")).toBe(true);
  });

  it("never hold the tokens, even when a caller's object is logged", async () => {
    app.kp.deps.logger.info(
      { authorization: `Bearer ${tenant.tokens.admin}`, nested: { token: tenant.tokens.editor, refreshToken: tenant.tokens.service } },
      "object with secrets",
    );
    const text = raw.join("");
    for (const token of Object.values(tenant.tokens)) expect(text).not.toContain(token);
    expect(text).toContain("[redacted]");
  });
});
