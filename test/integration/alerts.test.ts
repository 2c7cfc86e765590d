import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitHubTokenIssued } from "../../src/domain/githubToken/events.ts";
import { InstallationSuspended } from "../../src/domain/installation/events.ts";
import type { DomainEvent } from "../../src/domain/eventDefinition.ts";
import { AuthFailed } from "../../src/domain/security/events.ts";
import { SessionRevoked } from "../../src/domain/session/events.ts";
import { withPlatform } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { startLogReceivers, type LogReceivers } from "../fakes/logReceivers.ts";
import { browseInstall, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Tenant alert rules, evaluated as events are appended: each incident is one alert.fired event in
// the tenant's log (so its log streams carry it) and, when the rule names a channel, a message
// posted through the tenant's own Slack installation.

let world: ProviderWorld;
let receivers: LogReceivers;
let app: TestApp;
let dir: string;

beforeAll(async () => {
  world = await startProviderWorld();
  receivers = await startLogReceivers();
  dir = mkdtempSync(path.join(tmpdir(), "kp-alerts-"));
  writeFileSync(path.join(dir, "ca.pem"), receivers.caPem);
  app = await createTestApp({
    name: "alerts",
    env: { ...world.env, LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1", LOG_STREAM_CA_FILE: path.join(dir, "ca.pem") },
  });
});
afterAll(async () => {
  await app?.close();
  await receivers?.close();
  await world?.close();
  rmSync(dir, { recursive: true, force: true });
});

const CREATE = `mutation ($input: CreateAlertRuleInput!) { createAlertRule(input: $input) { id name condition cooldownMinutes slack { installationId channel } firedCount lastFiredAt } }`;
const codeOf = (res: { errors?: { extensions?: Record<string, unknown> }[] }) => res.errors?.[0]?.extensions?.code;

async function createRule(t: SeededTenant, input: Record<string, unknown>) {
  const res = await app.gql(CREATE, { input }, { token: t.tokens.admin });
  expect(res.errors).toBeUndefined();
  return res.data.createAlertRule as { id: string; name: string };
}

/** Events appended to the tenant's log through the store's write path, as a principal. */
async function append(tenantId: string, streamType: string, events: DomainEvent[], subject = "mallory") {
  for (const event of events) {
    await appendEvents(app.kp.deps.db, {
      tenantId,
      streamType,
      streamId: randomUUID(),
      expectedVersion: "any",
      events: [event],
      metadata: { actor: { subject, kind: "user", roles: ["viewer"] } },
      occurredAt: new Date(),
    });
  }
}

const authFailed = (reason = "bad-signature") => AuthFailed({ level: "warning", status: "failed", reason, resource: "graphql" });

async function headOf(tenantId: string): Promise<number> {
  const row = await withPlatform(app.kp.deps.db, (trx) =>
    trx.selectFrom("tenant_heads").select("last_seq").where("tenant_id", "=", tenantId).executeTakeFirst(),
  );
  return Number(row?.last_seq ?? 0);
}

/** Waits until the evaluator has looked at every event appended so far; returns the tenant's alert.fired events. */
async function firingsAfterEvaluation(t: SeededTenant) {
  const head = await headOf(t.tenantId);
  await waitFor("the evaluation to catch up", async () => {
    const row = await withPlatform(app.kp.deps.db, (trx) =>
      trx.selectFrom("alert_evaluations").select("evaluated_seq").where("tenant_id", "=", t.tenantId).executeTakeFirst(),
    );
    return Number(row?.evaluated_seq ?? 0) >= head;
  });
  return firings(t);
}

async function firings(t: SeededTenant, type = "alert.fired") {
  const res = await app.gql(
    `query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { nodes { sequence type data } } }`,
    { types: [type] },
    {
      token: t.tokens.admin,
    },
  );
  expect(res.errors).toBeUndefined();
  return (res.data.auditLog.nodes as { sequence: number; data: Record<string, any> }[]).sort((a, b) => a.sequence - b.sequence);
}

describe("alert rules", () => {
  it("fire once N events fall within the window, one alert per incident however many follow", async () => {
    const t = await app.seedTenant();
    const rule = await createRule(t, {
      name: "brute force",
      condition: { kind: "event_count", eventType: "auth.failed", count: 5, windowMinutes: 5 },
      cooldownMinutes: 30,
    });
    await append(t.tenantId, "security", [authFailed(), authFailed(), authFailed(), authFailed()]);
    expect(await firingsAfterEvaluation(t)).toEqual([]);
    await append(t.tenantId, "security", [authFailed()], "eve");
    const [fired] = await waitFor("a firing", async () => (await firings(t)).length > 0 && firings(t));
    expect(fired!.data).toMatchObject({ ruleId: rule.id, name: "brute force", kind: "event_count", count: 5, suppressed: 0, level: "warning" });
    expect(fired!.data.principals.sort()).toEqual(["eve", "mallory"]);
    // A flood in the cooldown is not a flood of alerts.
    await append(
      t.tenantId,
      "security",
      Array.from({ length: 30 }, () => authFailed()),
    );
    expect(await firingsAfterEvaluation(t)).toHaveLength(1);
    const listed = await app.gql(`{ alertRules { id firedCount lastFiredAt } }`, {}, { token: t.tokens.admin });
    expect(listed.data.alertRules).toEqual([{ id: rule.id, firedCount: 1, lastFiredAt: expect.any(String) }]);
  });

  it("watch only what follows their creation, and stop once deleted", async () => {
    const t = await app.seedTenant();
    await append(t.tenantId, "security", [authFailed(), authFailed()]);
    const rule = await createRule(t, {
      name: "any failure",
      condition: { kind: "event_count", eventType: "auth.failed", count: 1, windowMinutes: 1 },
      cooldownMinutes: 0,
    });
    expect(await firingsAfterEvaluation(t)).toEqual([]);
    await append(t.tenantId, "security", [authFailed()]);
    expect(await waitFor("one firing", async () => (await firings(t)).length === 1)).toBe(true);
    const deleted = await app.gql(`mutation ($id: ID!) { deleteAlertRule(id: $id) }`, { id: rule.id }, { token: t.tokens.admin });
    expect(deleted.data.deleteAlertRule).toBe(true);
    await append(t.tenantId, "security", [authFailed(), authFailed()]);
    // Another rule keeps the evaluation going: the deleted one stays silent.
    await createRule(t, { name: "reuse", condition: { kind: "refresh_token_reuse" } });
    expect(await firingsAfterEvaluation(t)).toHaveLength(1);
    const again = await app.gql(`mutation ($id: ID!) { deleteAlertRule(id: $id) }`, { id: rule.id }, { token: t.tokens.admin });
    expect(codeOf(again)).toBe("NOT_FOUND");
  });

  it("catch a cross-tenant access, a token to a new principal, a provider's suspension and a refresh token reuse", async () => {
    const t = await app.seedTenant();
    const other = await app.seedTenant();
    for (const kind of ["cross_tenant_access", "new_token_principal", "installation_suspended_by_provider", "refresh_token_reuse"]) {
      await createRule(t, { name: kind, condition: { kind }, cooldownMinutes: 0 });
    }
    // A real cross-tenant read: the viewer names another tenant.
    const probe = await app.gql(`query ($id: ID!) { tenant(id: $id) { id } }`, { id: other.tenantId }, { token: t.tokens.viewer });
    expect(codeOf(probe)).toBe("NOT_FOUND");
    const token = (requester: string, cached = false) =>
      GitHubTokenIssued({
        tokenId: randomUUID(),
        app: "rex",
        installationId: randomUUID(),
        githubInstallationId: 1,
        requester,
        policy: "p",
        repositories: null,
        permissions: { contents: "read" },
        fingerprint: `sha256:${randomUUID().slice(0, 16)}`,
        expiresAt: new Date(Date.now() + 3600_000).toISOString(),
        cached,
      });
    await append(t.tenantId, "github_token", [token("svc-a"), token("svc-a", true), token("svc-a"), token("svc-b")]);
    await append(t.tenantId, "installation", [
      InstallationSuspended({ installationId: "i-tenant", by: "tenant" }),
      InstallationSuspended({ installationId: "i-provider", by: "provider", reason: "app suspended" }),
    ]);
    const expiresAt = new Date(Date.now() + 86400_000).toISOString();
    await append(t.tenantId, "session", [
      SessionRevoked({ familyId: "f-1", reason: "revoked", expiresAt }),
      SessionRevoked({ familyId: "f-2", reason: "refresh-token-reuse", expiresAt }),
    ]);

    const fired = await firingsAfterEvaluation(t);
    const byName = (name: string) => fired.filter((f) => f.data.name === name).map((f) => f.data);
    expect(byName("cross_tenant_access")).toMatchObject([{ level: "critical", count: 1 }]);
    expect(byName("new_token_principal").map((f) => f.principals)).toEqual([["svc-a"], ["svc-b"]]);
    expect(byName("installation_suspended_by_provider")).toMatchObject([{ summary: "installation i-provider was suspended by its provider" }]);
    expect(byName("refresh_token_reuse")).toMatchObject([{ level: "critical", summary: expect.stringContaining("f-2") }]);
    expect(fired).toHaveLength(5);
  });

  it("post to the tenant's Slack channel through its own installation, and record a post that failed", async () => {
    const t = await app.seedTenant();
    const installed = await browseInstall(app, "slack", t.tokens.editor);
    expect(installed.status, JSON.stringify(installed.body)).toBe(200);
    const installationId = installed.body.installation.id as string;
    world.slack.setChannels(["security", "general"]);
    await createRule(t, {
      name: "Cross-tenant probe",
      condition: { kind: "cross_tenant_access" },
      cooldownMinutes: 0,
      slack: { installationId, channel: "#security" },
    });
    await createRule(t, { name: "Nowhere", condition: { kind: "cross_tenant_access" }, slack: { installationId, channel: "#no-such-channel" } });
    const before = world.slack.messages().length;
    await app.gql(`query { tenant(id: "someone-else") { id } }`, {}, { token: t.tokens.viewer });
    const message = await waitFor("the Slack message", () =>
      world.slack
        .messages()
        .slice(before)
        .find((m) => m.text.includes("Cross-tenant probe")),
    );
    expect(message).toMatchObject({ channelName: "security" });
    expect(message.text).toContain("access to another tenant refused");
    expect(message.text).toContain(t.tenantId);
    const failed = await waitFor("the failed post recorded", async () => {
      const found = await firings(t, "alert.notification_failed");
      return found.length > 0 && found;
    });
    expect(failed[0]!.data).toMatchObject({ channel: "#no-such-channel", error: "channel_not_found" });

    // Another tenant's installation, or one that is not Slack, cannot be named.
    const other = await app.seedTenant();
    const foreign = await app.gql(
      CREATE,
      { input: { name: "x", condition: { kind: "cross_tenant_access" }, slack: { installationId, channel: "#security" } } },
      { token: other.tokens.admin },
    );
    expect(codeOf(foreign)).toBe("BAD_USER_INPUT");
  });

  it("firings reach the tenant's log streams like any event", async () => {
    const t = await app.seedTenant();
    const endpoint = `alerts-${randomUUID()}`;
    const stream = await app.gql(
      `mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { secret logStream { id } } }`,
      { input: { name: "siem", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}`, filter: { types: ["alert.fired"] } } },
      { token: t.tokens.admin },
    );
    expect(stream.errors).toBeUndefined();
    registerSecret(stream.data.createLogStream.secret);
    receivers.webhookEndpoint(endpoint, [stream.data.createLogStream.secret]);
    await createRule(t, { name: "reuse", condition: { kind: "refresh_token_reuse" } });
    await append(t.tenantId, "session", [
      SessionRevoked({ familyId: "f-9", reason: "refresh-token-reuse", expiresAt: new Date(Date.now() + 60_000).toISOString() }),
    ]);
    const delivered = await waitFor("the alert at the SIEM", () => receivers.accepted("webhook").find((d) => d.endpoint === endpoint));
    expect(delivered.event).toMatchObject({ type: "alert.fired", tenantId: t.tenantId, data: { name: "reuse", kind: "refresh_token_reuse" } });
  });

  it("refuse bad rules with stable codes, storing nothing", async () => {
    const t = await app.seedTenant();
    for (const input of [
      { name: "x", condition: { kind: "event_count", eventType: "auth.failed", windowMinutes: 5 } },
      { name: "x", condition: { kind: "event_count", eventType: "auth.failed", count: 5 } },
      { name: "x", condition: { kind: "event_count", eventType: "auth.failed", count: 5000, windowMinutes: 5 } },
      { name: "x", condition: { kind: "event_count", eventType: "alert.fired", count: 1, windowMinutes: 5 } },
      { name: "x", condition: { kind: "cross_tenant_access", count: 3 } },
      { name: "", condition: { kind: "cross_tenant_access" } },
      { name: "x", condition: { kind: "cross_tenant_access" }, cooldownMinutes: -5 },
      { name: "x", condition: { kind: "cross_tenant_access" }, slack: { installationId: randomUUID(), channel: "#security" } },
      { name: "x", condition: { kind: "cross_tenant_access" }, slack: { installationId: randomUUID(), channel: "not a channel" } },
    ]) {
      const res = await app.gql(CREATE, { input }, { token: t.tokens.admin });
      expect(codeOf(res), JSON.stringify(input)).toBe("BAD_USER_INPUT");
    }
    expect((await app.gql(`{ alertRules { id } }`, {}, { token: t.tokens.admin })).data.alertRules).toEqual([]);
    expect(await firings(t, "alert_rule.created")).toEqual([]);
  });

  it("belong to their tenant: admins only, another tenant sees and deletes nothing, and a rule never fires on another tenant's events", async () => {
    const a = await app.seedTenant();
    const b = await app.seedTenant();
    const rule = await createRule(a, {
      name: "a's",
      condition: { kind: "event_count", eventType: "auth.failed", count: 1, windowMinutes: 1 },
      cooldownMinutes: 0,
    });
    for (const role of ["viewer", "editor", "service"] as const) {
      expect(codeOf(await app.gql(`{ alertRules { id } }`, {}, { token: a.tokens[role] })), role).toBe("FORBIDDEN");
      expect(codeOf(await app.gql(CREATE, { input: { name: "x", condition: { kind: "cross_tenant_access" } } }, { token: a.tokens[role] })), role).toBe(
        "FORBIDDEN",
      );
    }
    expect((await app.gql(`{ alertRules { id } }`, {}, { token: b.tokens.admin })).data.alertRules).toEqual([]);
    expect(codeOf(await app.gql(`mutation ($id: ID!) { deleteAlertRule(id: $id) }`, { id: rule.id }, { token: b.tokens.admin }))).toBe("NOT_FOUND");
    await append(b.tenantId, "security", [authFailed(), authFailed()]);
    await createRule(b, { name: "b's", condition: { kind: "refresh_token_reuse" } });
    expect(await firingsAfterEvaluation(a)).toEqual([]);
    expect(await firingsAfterEvaluation(b)).toEqual([]);
    expect((await app.gql(`{ alertRules { id name } }`, {}, { token: a.tokens.admin })).data.alertRules).toEqual([{ id: rule.id, name: "a's" }]);
  });
});
