import { createAlertRule, deleteAlertRule, listAlertRules, type AlertRuleRow } from "../../app/alerts/manageAlertRules.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { builder } from "../builder.ts";

const AlertConditionKind = builder.enumType("AlertConditionKind", {
  description:
    "event_count: at least `count` events of `eventType` within `windowMinutes`; cross_tenant_access: an access refused for reaching another tenant; new_token_principal: a GitHub token issued to a principal that never received one; installation_suspended_by_provider; refresh_token_reuse: a session's refresh token used twice",
  values: ["event_count", "cross_tenant_access", "new_token_principal", "installation_suspended_by_provider", "refresh_token_reuse"] as const,
});

const SlackAlertTarget = builder.objectRef<{ installationId: string; channel: string }>("SlackAlertTarget").implement({
  fields: (t) => ({ installationId: t.exposeID("installationId"), channel: t.exposeString("channel") }),
});

const AlertRule = builder.objectRef<AlertRuleRow>("AlertRule").implement({
  description: "A rule over the tenant's log; each firing is an alert.fired event (log streams and tenantEvents carry it) and, with `slack`, a message",
  fields: (t) => ({
    id: t.exposeID("ruleId"),
    name: t.exposeString("name"),
    condition: t.field({ type: "JSON", description: "{ kind, eventType?, count?, windowMinutes? }", resolve: (r) => r.condition }),
    cooldownMinutes: t.exposeInt("cooldownMinutes", { description: "After a firing, matches within this time count into the next firing instead" }),
    slack: t.field({ type: SlackAlertTarget, nullable: true, resolve: (r) => r.slack }),
    firedCount: t.exposeInt("firedCount"),
    lastFiredAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.lastFiredAt }),
    createdBy: t.exposeString("createdBy"),
    createdAt: t.field({ type: "DateTime", resolve: (r) => r.createdAt }),
  }),
});

const AlertConditionInput = builder.inputType("AlertConditionInput", {
  fields: (t) => ({
    kind: t.field({ type: AlertConditionKind, required: true }),
    eventType: t.string({ required: false, description: "event_count: the event type counted, e.g. auth.failed" }),
    count: t.int({ required: false, description: "event_count: how many (1–1000)" }),
    windowMinutes: t.int({ required: false, description: "event_count: within how many minutes (1–1440)" }),
  }),
});

const SlackAlertTargetInput = builder.inputType("SlackAlertTargetInput", {
  fields: (t) => ({
    installationId: t.id({ required: true, description: "The tenant's Slack installation" }),
    channel: t.string({ required: true, description: "#name or channel id; the app must be able to post there" }),
  }),
});

const CreateAlertRuleInput = builder.inputType("CreateAlertRuleInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    condition: t.field({ type: AlertConditionInput, required: true }),
    cooldownMinutes: t.int({ required: false, description: "Default 15 (0–1440)" }),
    slack: t.field({ type: SlackAlertTargetInput, required: false }),
  }),
});

/** The input without the fields left null (a condition takes only its own). */
const given = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v != null));

builder.queryField("alertRules", (t) =>
  t.withAuth({ permission: "alert-rule:manage" }).field({
    type: [AlertRule],
    resolve: (_root, _args, ctx) => listAlertRules(ctx.deps, ctx.actor),
  }),
);

builder.mutationField("createAlertRule", (t) =>
  t.withAuth({ permission: "alert-rule:manage" }).field({
    type: AlertRule,
    description: "Watches the events appended from now on",
    args: { input: t.arg({ type: CreateAlertRuleInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createAlertRule(
        ctx.deps,
        ctx.actor,
        given({
          name: input.name,
          condition: given(input.condition),
          cooldownMinutes: input.cooldownMinutes,
          slack: input.slack ? { installationId: String(input.slack.installationId), channel: input.slack.channel } : null,
        }),
        ctx.meta,
      ),
  }),
);

builder.mutationField("deleteAlertRule", (t) =>
  t.withAuth({ permission: "alert-rule:manage" }).field({
    type: "Boolean",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => deleteAlertRule(ctx.deps, ctx.actor, truncateWellFormed(String(args.id), 64), ctx.meta),
  }),
);
