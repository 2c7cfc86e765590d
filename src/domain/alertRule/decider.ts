import type { Decider, StreamName } from "../decider.ts";
import { decideAlertRule, type AlertRuleCommand } from "./decide.ts";
import type { AlertRuleEvent } from "./events.ts";
import { evolveAlertRule, initialAlertRuleState, type AlertRuleState } from "./evolve.ts";

export const alertRuleDecider: Decider<AlertRuleState, AlertRuleCommand, AlertRuleEvent> = {
  initialState: initialAlertRuleState,
  evolve: evolveAlertRule,
  decide: decideAlertRule,
};

export const alertRuleStream = (ruleId: string): StreamName => ({ streamType: "alert_rule", streamId: ruleId });
