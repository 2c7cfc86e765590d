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
    expect(state).toEqual({ exists: true, id: "acme", name: "Acme", tier: "pro", status: "active", retentionDays: null, legalHold: null });
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

  it("sets a retention within the tier's bound (null: as long as the tier allows), recording only changes", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "free" } };
    const retention = (days: number | null, tierMaxDays: number | null): TenantCommand => ({ type: "SetRetentionPolicy", input: { days }, tierMaxDays });
    const set: TenantEvent = { type: "tenant.retention_set", data: { tenantId: "acme", days: 7, previousDays: null, tierMaxDays: 30 } };
    given([created]).when(retention(7, 30)).then([set]);
    expect(stateAfter(tenantDecider, [created, set])).toMatchObject({ retentionDays: 7 });
    given([created, set]).when(retention(7, 30)).thenNothingHappened();
    given([created, set])
      .when(retention(null, 30))
      .then([{ type: "tenant.retention_set", data: { tenantId: "acme", days: null, previousDays: 7, tierMaxDays: 30 } }]);
    given([created])
      .when(retention(31, 30))
      .thenThrows("BAD_USER_INPUT", { message: /^days: the free tier keeps the log at most 30 days/, extensions: { field: "days" } });
    given([created])
      .when(retention(3650, null))
      .then([{ type: "tenant.retention_set", data: { tenantId: "acme", days: 3650, previousDays: null, tierMaxDays: null } }]);
    for (const bad of [0, -1, 1.5, 36_501]) given([created]).when(retention(bad, null)).thenThrows("BAD_USER_INPUT");
    given([]).when(retention(7, 30)).thenThrows("NOT_FOUND");
  });

  it("holds pruning with a reason until released; each only once", () => {
    const created: TenantEvent = { type: "tenant.created", data: { tenantId: "acme", name: "Acme", tier: "pro" } };
    const held: TenantEvent = { type: "tenant.legal_hold_set", data: { tenantId: "acme", reason: "litigation 2026-114" } };
    const released: TenantEvent = { type: "tenant.legal_hold_released", data: { tenantId: "acme" } };
    given([created])
      .when({ type: "SetLegalHold", input: { reason: " litigation 2026-114 " } })
      .then([held]);
    expect(stateAfter(tenantDecider, [created, held])).toMatchObject({ legalHold: "litigation 2026-114" });
    given([created, held])
      .when({ type: "SetLegalHold", input: { reason: "another" } })
      .thenNothingHappened();
    given([created, held]).when({ type: "ReleaseLegalHold" }).then([released]);
    expect(stateAfter(tenantDecider, [created, held, released])).toMatchObject({ legalHold: null });
    given([created]).when({ type: "ReleaseLegalHold" }).thenNothingHappened();
    given([created])
      .when({ type: "SetLegalHold", input: { reason: "" } })
      .thenThrows("BAD_USER_INPUT");
    given([]).when({ type: "ReleaseLegalHold" }).thenThrows("NOT_FOUND");
  });
});
