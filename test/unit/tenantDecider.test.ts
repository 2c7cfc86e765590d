import { describe, expect, it } from "vitest";
import { decideTenant, type CreateTenantCommand } from "../../src/domain/tenant/decide.ts";
import type { TenantEvent } from "../../src/domain/tenant/events.ts";
import { evolveTenant, initialTenantState } from "../../src/domain/tenant/evolve.ts";
import { ConflictError, BadInputError, NotFoundError } from "../../src/errors.ts";

// Given events, when a command, then events (or an error): no database involved.
const given = (events: TenantEvent[]) => ({
  when: (input: CreateTenantCommand["input"]) => () => decideTenant({ type: "CreateTenant", input }, events.reduce(evolveTenant, initialTenantState())),
});

describe("tenant decider", () => {
  it("creates a tenant on the free tier by default", () => {
    expect(given([]).when({ id: "acme", name: " Acme " })()).toEqual([{ type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "free" } }]);
  });

  it("refuses a tenant that exists", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "pro" } };
    expect(given([created]).when({ id: "acme", name: "Again" })).toThrow(ConflictError);
  });

  it("names the field of bad input", () => {
    expect(given([]).when({ id: "Not A Slug", name: "x" })).toThrow(/^id: /);
    expect(given([]).when({ id: "ok-id", name: "" })).toThrow(/^name: /);
    expect(given([]).when({ id: "ok-id", name: "x", tier: "gold" as "free" })).toThrow(BadInputError);
    expect(given([]).when({ id: "_platform", name: "x" })).toThrow(/^id: /);
  });

  it("evolves to the created state", () => {
    const state = evolveTenant(initialTenantState(), { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "pro" } });
    expect(state).toEqual({ exists: true, id: "acme", name: "Acme", tier: "pro", status: "active" });
  });

  it("changes the tier once; the same tier again records nothing; an unknown tenant is NOT_FOUND", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "free" } };
    const change = (events: TenantEvent[], tier: string) => decideTenant({ type: "ChangeTenantTier", input: { tier: tier as "pro" } }, events.reduce(evolveTenant, initialTenantState()));
    const changed = change([created], "pro");
    expect(changed).toEqual([{ type: "tenant.tier_changed", data: { tenantId: "acme", from: "free", to: "pro" } }]);
    expect(change([created, ...changed], "pro")).toEqual([]);
    expect([created, ...changed].reduce(evolveTenant, initialTenantState())).toMatchObject({ tier: "pro" });
    expect(() => change([], "pro")).toThrow(NotFoundError);
    expect(() => change([created], "gold")).toThrow(BadInputError);
  });
});
