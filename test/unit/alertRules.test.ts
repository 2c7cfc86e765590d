import { describe, expect, it } from "vitest";
import { emptyMemory, matchWeight, observe, type RuleMemory, type WatchedEvent } from "../../src/domain/alertRule/conditions.ts";
import type { AlertRuleCommand } from "../../src/domain/alertRule/decide.ts";
import { alertRuleDecider } from "../../src/domain/alertRule/decider.ts";
import type { AlertCondition, AlertRuleEvent } from "../../src/domain/alertRule/events.ts";
import { deciderSpec } from "../testkit/deciderSpec.ts";

const given = deciderSpec(alertRuleDecider);
const create: AlertRuleCommand = {
  type: "CreateAlertRule",
  ruleId: "r1",
  name: "brute force",
  condition: { kind: "event_count", eventType: "auth.failed", count: 3, windowMinutes: 5 },
  cooldownMinutes: 10,
  slack: null,
};
const created: AlertRuleEvent = {
  type: "alert_rule.created",
  data: { ruleId: "r1", name: "brute force", condition: create.condition, cooldownMinutes: 10, slack: null },
};

describe("alert rule decider", () => {
  it("creates a rule from valid input only", () => {
    given([]).when(create).then([created]);
    for (const bad of [
      { name: "" },
      { condition: { kind: "event_count", eventType: "auth.failed", count: 0, windowMinutes: 5 } },
      { condition: { kind: "event_count", eventType: "auth.failed", count: 3, windowMinutes: 2000 } },
      { condition: { kind: "event_count", eventType: "alert.fired", count: 1, windowMinutes: 5 } },
      { condition: { kind: "event_count", eventType: "not a type", count: 1, windowMinutes: 5 } },
      { condition: { kind: "no_such_kind" } },
      { condition: { kind: "cross_tenant_access", extra: true } },
      { cooldownMinutes: -1 },
      { slack: { installationId: "i1", channel: "security room" } },
    ]) {
      given([])
        .when({ ...create, ...bad } as AlertRuleCommand)
        .thenThrows("BAD_USER_INPUT");
    }
  });

  it("deletes once; records firings and failed notifications of an existing rule", () => {
    const deleted: AlertRuleEvent = { type: "alert_rule.deleted", data: { ruleId: "r1" } };
    given([created]).when({ type: "DeleteAlertRule" }).then([deleted]);
    given([created, deleted]).when({ type: "DeleteAlertRule" }).thenThrows("NOT_FOUND");
    given([]).when({ type: "DeleteAlertRule" }).thenThrows("NOT_FOUND");
    const firing = { count: 3, firstSequence: 4, lastSequence: 9, principals: ["eve"], suppressed: 0, summary: "3 auth.failed", level: "warning" as const };
    given([created])
      .when({ type: "RecordAlertFiring", ...firing })
      .then([{ type: "alert.fired", data: { ruleId: "r1", name: "brute force", kind: "event_count", ...firing } }]);
    given([created])
      .when({ type: "RecordAlertNotificationFailure", firedSequence: 10, channel: "#sec", error: "channel_not_found" })
      .then([{ type: "alert.notification_failed", data: { ruleId: "r1", firedSequence: 10, channel: "#sec", error: "channel_not_found" } }]);
  });
});

const at = (minute: number) => new Date(Date.UTC(2026, 11, 3, 12, 0) + minute * 60_000).toISOString();
let seq = 0;
const ev = (type: string, minute: number, data: Record<string, unknown> = {}, subject = "eve"): WatchedEvent => ({
  sequence: ++seq,
  type,
  occurredAt: at(minute),
  data,
  metadata: { actor: { subject, kind: "user", roles: [] } },
});

/** Runs the events through one rule; returns its firings. */
function run(condition: AlertCondition, events: WatchedEvent[], cooldownMinutes = 10, facts: (e: WatchedEvent) => object = () => ({})) {
  let memory: RuleMemory = emptyMemory();
  const firings = [];
  for (const event of events) {
    const weight = matchWeight(condition, event, facts(event));
    if (weight === 0) continue;
    const next = observe({ condition, cooldownMinutes }, memory, event, weight);
    memory = next.memory;
    if (next.firing) firings.push(next.firing);
  }
  return firings;
}

describe("alert conditions", () => {
  const threshold: AlertCondition = { kind: "event_count", eventType: "auth.failed", count: 3, windowMinutes: 5 };

  it("fires once N events fall within the window, not when they spread wider", () => {
    const spread = [ev("auth.failed", 0), ev("auth.failed", 3), ev("auth.failed", 6), ev("auth.failed", 9.5)];
    expect(run(threshold, spread)).toEqual([]);
    const burst = [ev("auth.failed", 0), ev("agent.created", 1), ev("auth.failed", 1, {}, "mallory"), ev("auth.failed", 2)];
    const [firing, ...more] = run(threshold, burst);
    expect(more).toEqual([]);
    expect(firing).toMatchObject({ count: 3, firstSequence: burst[0]!.sequence, lastSequence: burst[3]!.sequence, suppressed: 0, level: "warning" });
    expect(firing!.principals.sort()).toEqual(["eve", "mallory"]);
  });

  it("counts a sampled event with the events it folds in", () => {
    const [firing] = run(threshold, [ev("auth.failed", 0, { suppressed: 4 })]);
    expect(firing).toMatchObject({ count: 5 });
  });

  it("is one alert per incident: matches within the cooldown are carried into the next firing", () => {
    const events = [...Array.from({ length: 9 }, (_, i) => ev("auth.failed", i * 0.5)), ...Array.from({ length: 3 }, (_, i) => ev("auth.failed", 20 + i))];
    const firings = run(threshold, events, 10);
    expect(firings).toHaveLength(2);
    expect(firings[0]).toMatchObject({ count: 3, suppressed: 0 });
    // Six more came while cooling down: the next incident says so.
    expect(firings[1]).toMatchObject({ count: 3, suppressed: 6 });
  });

  it("keeps its memory bounded whatever the rate", () => {
    const condition: AlertCondition = { kind: "event_count", eventType: "auth.failed", count: 5, windowMinutes: 60 };
    let memory = emptyMemory();
    for (let i = 0; i < 500; i++) memory = observe({ condition, cooldownMinutes: 1000 }, memory, ev("auth.failed", i * 0.01), 1).memory;
    expect(memory.recent.length).toBeLessThanOrEqual(5);
  });

  it("matches each single-event condition only on what it names", () => {
    expect(
      run({ kind: "cross_tenant_access" }, [ev("access.denied", 0, { reason: "forbidden" }), ev("access.denied", 1, { reason: "cross-tenant" })]),
    ).toMatchObject([{ count: 1, level: "critical" }]);
    expect(
      run({ kind: "installation_suspended_by_provider" }, [
        ev("installation.suspended", 0, { installationId: "i1", by: "tenant" }),
        ev("installation.suspended", 1, { installationId: "i2", by: "provider" }),
      ]),
    ).toMatchObject([{ summary: "installation i2 was suspended by its provider" }]);
    expect(
      run({ kind: "refresh_token_reuse" }, [
        ev("session.revoked", 0, { familyId: "f1", reason: "revoked" }),
        ev("session.revoked", 1, { familyId: "f2", reason: "refresh-token-reuse" }),
      ]),
    ).toMatchObject([{ level: "critical" }]);
    const issued = [ev("token.issued", 0, { requester: "svc-a", cached: false }), ev("token.issued", 1, { requester: "svc-b", cached: false })];
    const firings = run({ kind: "new_token_principal" }, issued, 0, (e) => ({
      firstTokenOfRequester: (e.data as { requester: string }).requester === "svc-b",
    }));
    expect(firings).toMatchObject([{ principals: ["svc-b"], lastSequence: issued[1]!.sequence }]);
  });
});
