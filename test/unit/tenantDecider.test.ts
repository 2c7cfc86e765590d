import { describe, expect, it } from "vitest";
import type { CreateTenantCommand, TenantCommand } from "../../src/domain/tenant/decide.ts";
import { tenantDecider } from "../../src/domain/tenant/decider.ts";
import type { TenantEvent } from "../../src/domain/tenant/events.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const given = deciderSpec(tenantDecider);
const create = (input: CreateTenantCommand["input"]): TenantCommand => ({ type: "CreateTenant", input });
const changeTier = (tier: string): TenantCommand => ({ type: "ChangeTenantTier", input: { tier: tier as "pro" } });
const suspend = (reason: string): TenantCommand => ({ type: "SuspendTenant", input: { reason } });
const resume: TenantCommand = { type: "ResumeTenant" };

describe("tenant decider", () => {
  it("creates a tenant on the free tier by default", () => {
    given([])
      .when(create({ id: "acme", name: " Acme " }))
      .then([{ type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "free" } }]);
  });

  it("refuses a tenant that exists", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "pro" } };
    given([created])
      .when(create({ id: "acme", name: "Again" }))
      .thenThrows("CONFLICT");
  });

  it("names the field of bad input", () => {
    given([])
      .when(create({ id: "Not A Slug", name: "x" }))
      .thenThrows("BAD_USER_INPUT", { message: /^id: /, extensions: { field: "id" } });
    given([])
      .when(create({ id: "ok-id", name: "" }))
      .thenThrows("BAD_USER_INPUT", { message: /^name: /, extensions: { field: "name" } });
    given([])
      .when(create({ id: "ok-id", name: "x", tier: "gold" as "free" }))
      .thenThrows("BAD_USER_INPUT");
    given([])
      .when(create({ id: "_platform", name: "x" }))
      .thenThrows("BAD_USER_INPUT", { message: /^id: / });
  });

  it("evolves to the created state", () => {
    const state = stateAfter(tenantDecider, [{ type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "pro" } }]);
    expect(state).toEqual({ exists: true, id: "acme", name: "Acme", tier: "pro", status: "active" });
  });

  it("changes the tier once; the same tier again records nothing; an unknown tenant is NOT_FOUND", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "free" } };
    const changed: TenantEvent = { type: "tenant.tier_changed", data: { tenantId: "acme", from: "free", to: "pro" } };
    given([created]).when(changeTier("pro")).then([changed]);
    given([created, changed]).when(changeTier("pro")).thenNothingHappened();
    expect(stateAfter(tenantDecider, [created, changed])).toMatchObject({ tier: "pro" });
    given([]).when(changeTier("pro")).thenThrows("NOT_FOUND");
    given([created]).when(changeTier("gold")).thenThrows("BAD_USER_INPUT");
  });

  it("suspends an active tenant with a reason and resumes it; each only once; an unknown tenant is NOT_FOUND", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "free" } };
    const suspended: TenantEvent = { type: "tenant.suspended", data: { tenantId: "acme", reason: "unpaid invoice" } };
    const resumed: TenantEvent = { type: "tenant.resumed", data: { tenantId: "acme" } };
    given([created]).when(suspend("  unpaid invoice ")).then([suspended]);
    expect(stateAfter(tenantDecider, [created, suspended])).toMatchObject({ status: "suspended" });
    given([created, suspended]).when(suspend("again")).thenNothingHappened();
    given([created, suspended]).when(resume).then([resumed]);
    expect(stateAfter(tenantDecider, [created, suspended, resumed])).toMatchObject({ status: "active" });
    given([created]).when(resume).thenNothingHappened();
    given([created])
      .when(suspend(" "))
      .thenThrows("BAD_USER_INPUT", { message: /^reason: /, extensions: { field: "reason" } });
    given([created])
      .when(suspend("x".repeat(501)))
      .thenThrows("BAD_USER_INPUT");
    given([]).when(suspend("why")).thenThrows("NOT_FOUND");
    given([]).when(resume).thenThrows("NOT_FOUND");
  });
});
