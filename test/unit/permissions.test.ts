import { describe, expect, it } from "vitest";
import { effectivePermissions, PERMISSIONS, ROLE_PERMISSIONS } from "../../src/auth/permissions.ts";

describe("permissions", () => {
  it("grants every role only catalogued permissions", () => {
    for (const perms of Object.values(ROLE_PERMISSIONS)) for (const p of perms) expect(Object.keys(PERMISSIONS)).toContain(p);
  });

  it("lets scopes narrow a token but not widen it", () => {
    expect([...effectivePermissions(["admin"], ["tenant:read"])]).toEqual(["tenant:read"]);
    expect([...effectivePermissions(["viewer"], ["token:issue"])]).toEqual([]);
    expect(effectivePermissions(["admin"], []).has("token:issue")).toBe(true);
  });

  it("lets the audit:read scope make an auditor of a viewer", () => {
    expect([...effectivePermissions(["viewer"], ["audit:read"])]).toEqual(["audit:read"]);
    expect(effectivePermissions(["viewer"], []).has("audit:read")).toBe(false);
  });

  it("keeps platform operators out of tenant data", () => {
    expect(effectivePermissions(["platform"], []).has("tenant:read")).toBe(false);
    expect(effectivePermissions(["platform"], []).has("tenant:create")).toBe(true);
  });
});
