import type { AlertCondition, AlertRuleEvent, SlackTarget } from "./events.ts";

export type AlertRuleState =
  | { exists: false }
  | { exists: true; deleted: boolean; ruleId: string; name: string; condition: AlertCondition; cooldownMinutes: number; slack: SlackTarget | null };

export const initialAlertRuleState = (): AlertRuleState => ({ exists: false });

export function evolveAlertRule(state: AlertRuleState, event: AlertRuleEvent): AlertRuleState {
  if (event.type === "alert_rule.created") {
    const { ruleId, name, condition, cooldownMinutes, slack } = event.data;
    return { exists: true, deleted: false, ruleId, name, condition, cooldownMinutes, slack };
  }
  if (!state.exists) return state;
  if (event.type === "alert_rule.deleted") return { ...state, deleted: true };
  return state;
}
