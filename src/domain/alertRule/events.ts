import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// A tenant's alert rules over its own event log, and their firings. A rule watches the events
// appended after it was created; a firing is an event of the rule's stream, delivered like any
// other (log streams, tenantEvents) and, when the rule names one, posted to a Slack channel.

export const alertConditionSchema = z.discriminatedUnion("kind", [
  /** At least `count` events of `eventType` within `windowMinutes` (sampled security events count with what they fold in). */
  z.object({ kind: z.literal("event_count"), eventType: z.string(), count: z.number().int(), windowMinutes: z.number().int() }),
  /** An access refused because it reached for another tenant. */
  z.object({ kind: z.literal("cross_tenant_access") }),
  /** A GitHub token issued to a principal that never received one before. */
  z.object({ kind: z.literal("new_token_principal") }),
  /** An installation suspended by its provider (GitHub, Slack, Atlassian), not by the tenant. */
  z.object({ kind: z.literal("installation_suspended_by_provider") }),
  /** A session's refresh token used twice: its family revoked as stolen. */
  z.object({ kind: z.literal("refresh_token_reuse") }),
]);
export type AlertCondition = z.infer<typeof alertConditionSchema>;
export type AlertConditionKind = AlertCondition["kind"];

export const slackTargetSchema = z.object({ installationId: z.string(), channel: z.string() });
export type SlackTarget = z.infer<typeof slackTargetSchema>;

export const AlertRuleCreated = defineEvent(
  "alert_rule.created",
  1,
  z.object({
    ruleId: z.string(),
    name: z.string(),
    condition: alertConditionSchema,
    /** After a firing, matches within this many minutes are counted into the next firing instead of firing. */
    cooldownMinutes: z.number().int(),
    slack: slackTargetSchema.nullable(),
  }),
);
export const AlertRuleDeleted = defineEvent("alert_rule.deleted", 1, z.object({ ruleId: z.string() }));

/** One incident: the matches that made it (first and last sequence, how many), and what the cooldown held back before it. */
export const AlertFired = defineEvent(
  "alert.fired",
  1,
  z.object({
    ruleId: z.string(),
    name: z.string(),
    kind: z.string(),
    level: z.enum(["warning", "critical"]),
    summary: z.string(),
    count: z.number().int().positive(),
    firstSequence: z.number().int().positive(),
    lastSequence: z.number().int().positive(),
    /** Principals (subjects) of the matching events, at most 10. */
    principals: z.array(z.string()),
    /** Matches since the previous firing that the cooldown held back. */
    suppressed: z.number().int().nonnegative(),
  }),
);
/** The firing could not be posted to the rule's Slack channel (the answer, never a token). */
export const AlertNotificationFailed = defineEvent(
  "alert.notification_failed",
  1,
  z.object({ ruleId: z.string(), firedSequence: z.number().int().positive(), channel: z.string(), error: z.string() }),
);

export const alertRuleEvents = [AlertRuleCreated, AlertRuleDeleted, AlertFired, AlertNotificationFailed] as const;
export type AlertRuleEvent = EventOf<(typeof alertRuleEvents)[number]>;
