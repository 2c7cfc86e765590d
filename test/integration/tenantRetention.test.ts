import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventMetadata, systemActor } from "../../src/auth/actor.ts";
import { handleCommand } from "../../src/app/handleCommand.ts";
import { rebuildProjections } from "../../src/app/rebuildProjections.ts";
import type { TenantCommand } from "../../src/domain/tenant/decide.ts";
import { tenantDecider, tenantStream } from "../../src/domain/tenant/decider.ts";
import { withPlatform } from "../../src/store/db.ts";
import { createTestApp, type TestApp } from "../testkit/testApp.ts";

// Issue 21's first piece: a tenant's retention period and legal hold are decided on the tenant's
// stream through the one write path and projected into the tenants table (rebuilt alike). The API
// and the pruning job that read them come next.

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ name: "tenant-retention" });
});
afterAll(async () => {
  await app?.close();
});

const decide = (tenantId: string, command: TenantCommand) =>
  handleCommand(app.kp.deps.db, {
    tenantId,
    ...tenantStream(tenantId),
    decider: tenantDecider,
    command,
    metadata: eventMetadata(systemActor("test", tenantId)),
    occurredAt: app.kp.deps.now(),
  });

const row = (tenantId: string) =>
  withPlatform(app.kp.deps.db, (trx) =>
    trx.selectFrom("tenants").select(["retention_days", "legal_hold_reason", "legal_hold_since"]).where("tenant_id", "=", tenantId).executeTakeFirstOrThrow(),
  );

describe("a tenant's retention and legal hold", () => {
  it("are projected as decided, and rebuilt the same from the log", async () => {
    const { tenantId } = await app.seedTenant();
    const tierMaxDays = app.kp.deps.config.audit.retentionDays.free;
    expect(tierMaxDays).toBe(30);
    expect(await row(tenantId)).toEqual({ retention_days: null, legal_hold_reason: null, legal_hold_since: null });
    await decide(tenantId, { type: "SetRetentionPolicy", input: { days: 14 }, tierMaxDays });
    await decide(tenantId, { type: "SetLegalHold", input: { reason: "case 7" } });
    const held = await row(tenantId);
    expect(held).toMatchObject({ retention_days: 14, legal_hold_reason: "case 7" });
    expect(held.legal_hold_since).not.toBeNull();
    await expect(decide(tenantId, { type: "SetRetentionPolicy", input: { days: 60 }, tierMaxDays })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });

    await rebuildProjections(app.kp.deps.db);
    expect(await row(tenantId)).toEqual(held);
    await decide(tenantId, { type: "ReleaseLegalHold" });
    expect(await row(tenantId)).toEqual({ retention_days: 14, legal_hold_reason: null, legal_hold_since: null });
  });
});
