import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// CORS: no origin is allowed unless configured (CORS_ORIGINS), and none ever gets credentials.
// Before, any Origin was reflected with Access-Control-Allow-Credentials: true.

const ALLOWED = "https://console.example.com";
const EVIL = "https://evil.example";

describe.each([
  { name: "by default", env: {} as Record<string, string>, allowed: [] as string[] },
  { name: `with CORS_ORIGINS=${ALLOWED}`, env: { CORS_ORIGINS: `${ALLOWED},https://other.example:8443` }, allowed: [ALLOWED] },
])("cross-origin requests $name", ({ env, allowed }) => {
  let app: TestApp;
  let tenant: SeededTenant;
  beforeAll(async () => {
    app = await createTestApp({ name: "cors", env });
    tenant = await app.seedTenant();
  });
  afterAll(() => app?.close());

  const post = (origin: string) =>
    fetch(`${app.url}/graphql`, {
      method: "POST",
      headers: { origin, "content-type": "application/json", authorization: `Bearer ${tenant.tokens.viewer}` },
      body: JSON.stringify({ query: "{ me { subject } }" }),
    });
  const preflight = (origin: string) =>
    fetch(`${app.url}/graphql`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });

  it("gives a foreign origin no CORS headers at all, on requests and preflights", async () => {
    for (const res of [await post(EVIL), await preflight(EVIL)]) {
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
      expect(res.headers.get("vary")).toContain("Origin");
    }
  });

  it.runIf(allowed.length > 0)("allows a configured origin, without credentials", async () => {
    const res = await post(ALLOWED);
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    expect(res.headers.get("access-control-expose-headers")).toContain("x-request-id");
    const pre = await preflight(ALLOWED);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(pre.headers.get("access-control-allow-headers")).toContain("authorization");
    expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
  });
});

describe("CORS_ORIGINS", () => {
  it("refuses what is not an exact origin, at start-up", () => {
    for (const bad of ["*", "https://console.example.com/", "console.example.com", "https://a.example/path"]) {
      expect(() => loadConfig({ NODE_ENV: "test", CORS_ORIGINS: bad })).toThrow(/CORS_ORIGINS/);
    }
    expect(loadConfig({ NODE_ENV: "test", CORS_ORIGINS: "https://a.example, http://localhost:5173" }).corsOrigins).toEqual([
      "https://a.example",
      "http://localhost:5173",
    ]);
  });
});
