import { z } from "zod";
import { NotFoundError } from "../../errors.ts";
import { parseInput } from "../validation.ts";
import {
  AlertFired,
  AlertNotificationFailed,
  AlertRuleCreated,
  AlertRuleDeleted,
  type AlertCondition,
  type AlertRuleEvent,
  type SlackTarget,
} from "./events.ts";
import type { AlertRuleState } from "./evolve.ts";
import type { Firing } from "./conditions.ts";

const EVENT_TYPE = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;

/** What an admin may ask for: alert.* events cannot be watched (a rule must not feed on firings). */
export const AlertConditionInput = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("event_count"),
      eventType: z
        .string()
        .regex(EVENT_TYPE, "must be an event type such as auth.failed")
        .refine((t) => !t.startsWith("alert."), "alerts cannot watch alert events"),
      count: z.number().int().min(1).max(1000),
      windowMinutes: z.number().int().min(1).max(1440),
    })
    .strict(),
  z.object({ kind: z.literal("cross_tenant_access") }).strict(),
  z.object({ kind: z.literal("new_token_principal") }).strict(),
  z.object({ kind: z.literal("installation_suspended_by_provider") }).strict(),
  z.object({ kind: z.literal("refresh_token_reuse") }).strict(),
]);

export const AlertRuleInput = z
  .object({
    name: z.string().trim().min(1, "must not be empty").max(100),
    condition: AlertConditionInput,
    cooldownMinutes: z.number().int().min(0).max(1440).default(15),
    slack: z
      .object({
        installationId: z.string().min(1).max(64),
        channel: z.string().regex(/^(#[a-z0-9][a-z0-9_-]{0,79}|[CGD][A-Z0-9]{8,20})$/, "must be a channel name (#security) or id (C0123456789)"),
      })
      .strict()
      .nullable()
      .default(null),
  })
  .strict();

export type AlertRuleCommand =
  | { type: "CreateAlertRule"; ruleId: string; name: string; condition: AlertCondition; cooldownMinutes: number; slack: SlackTarget | null }
  | { type: "DeleteAlertRule" }
  | ({ type: "RecordAlertFiring" } & Firing)
  | { type: "RecordAlertNotificationFailure"; firedSequence: number; channel: string; error: string };

export function decideAlertRule(command: AlertRuleCommand, state: AlertRuleState): AlertRuleEvent[] {
  if (command.type === "CreateAlertRule") {
    const { type: _, ruleId, ...input } = command;
    const parsed = parseInput(AlertRuleInput, input);
    return [AlertRuleCreated({ ruleId, name: parsed.name, condition: parsed.condition, cooldownMinutes: parsed.cooldownMinutes, slack: parsed.slack })];
  }
  if (!state.exists) throw new NotFoundError("alert rule");
  switch (command.type) {
    case "DeleteAlertRule":
      if (state.deleted) throw new NotFoundError("alert rule");
      return [AlertRuleDeleted({ ruleId: state.ruleId })];
    case "RecordAlertFiring": {
      // A firing decided before the rule was deleted still happened: it is recorded.
      const { type: _, ...firing } = command;
      return [AlertFired({ ruleId: state.ruleId, name: state.name, kind: state.condition.kind, ...firing })];
    }
    case "RecordAlertNotificationFailure":
      return [AlertNotificationFailed({ ruleId: state.ruleId, firedSequence: command.firedSequence, channel: command.channel, error: command.error })];
  }
}
