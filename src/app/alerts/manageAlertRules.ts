import { randomUUID } from "node:crypto";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { AlertRuleInput } from "../../domain/alertRule/decide.ts";
import { alertRuleDecider, alertRuleStream } from "../../domain/alertRule/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { BadInputError, ConflictError } from "../../errors.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import { findInstallation } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";

// A tenant's alert rules, as its admins manage them. Creating or deleting one moves the tenant's
// evaluation to a new generation (the evaluator holding the old rules reloads); the first rule
// starts the evaluation at the event that created it.

type Deps = Pick<AppDeps, "db" | "now">;

export interface AlertRuleRow {
  ruleId: string;
  name: string;
  condition: Record<string, unknown>;
  cooldownMinutes: number;
  slack: { installationId: string; channel: string } | null;
  firedCount: number;
  lastFiredAt: Date | null;
  createdBy: string;
  createdAt: Date;
}

/** Rules per tenant: each is evaluated against every new event. */
export const MAX_ALERT_RULES = 50;

export async function createAlertRule(deps: Deps, actor: Actor, raw: unknown, request: RequestMeta = {}): Promise<AlertRuleRow> {
  const input = parseInput(AlertRuleInput, raw);
  const ruleId = randomUUID();
  const tenantId = actor.tenantId;
  return withTenant(deps.db, tenantId, async (trx) => {
    const rules = await listRules(trx, tenantId);
    if (rules.length >= MAX_ALERT_RULES) throw new ConflictError(`the tenant has ${MAX_ALERT_RULES} alert rules, the most allowed; delete one first`);
    if (input.slack) {
      const installation = await findInstallation(trx, tenantId, truncateWellFormed(input.slack.installationId, 64));
      if (installation?.platform !== "slack")
        throw new BadInputError("slack.installationId: no Slack installation of this tenant has this id", "slack.installationId");
      if (installation.status !== "active") throw new BadInputError(`slack.installationId: the installation is ${installation.status}`, "slack.installationId");
    }
    const { stored } = await decideAndAppend(trx, {
      tenantId,
      ...alertRuleStream(ruleId),
      decider: alertRuleDecider,
      command: { type: "CreateAlertRule", ruleId, ...input },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
      newStream: true,
    });
    // The first rule starts the tenant's evaluation here; later ones make the evaluator reload.
    await trx
      .insertInto("alert_evaluations")
      .values({ tenant_id: tenantId, evaluated_seq: stored[0]!.sequence - 1 })
      .onConflict((oc) => oc.column("tenant_id").doUpdateSet((eb) => ({ generation: eb("alert_evaluations.generation", "+", 1) })))
      .execute();
    return (await listRules(trx, tenantId, ruleId))[0]!;
  });
}

export async function deleteAlertRule(deps: Deps, actor: Actor, ruleId: string, request: RequestMeta = {}): Promise<boolean> {
  const tenantId = actor.tenantId;
  await withTenant(deps.db, tenantId, async (trx) => {
    await decideAndAppend(trx, {
      tenantId,
      ...alertRuleStream(truncateWellFormed(ruleId, 64)),
      decider: alertRuleDecider,
      command: { type: "DeleteAlertRule" },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
    await trx
      .updateTable("alert_evaluations")
      .set((eb) => ({ generation: eb("generation", "+", 1) }))
      .where("tenant_id", "=", tenantId)
      .execute();
  });
  return true;
}

export function listAlertRules(deps: Pick<AppDeps, "db">, actor: Actor): Promise<AlertRuleRow[]> {
  return withTenant(deps.db, actor.tenantId, (trx) => listRules(trx, actor.tenantId));
}

async function listRules(trx: Tx, tenantId: string, ruleId?: string): Promise<AlertRuleRow[]> {
  let query = trx.selectFrom("alert_rules").selectAll().where("tenant_id", "=", tenantId).where("deleted", "=", false);
  if (ruleId) query = query.where("rule_id", "=", ruleId);
  const rows = await query.orderBy("created_at").orderBy("rule_id").execute();
  return rows.map((r) => ({
    ruleId: r.rule_id,
    name: r.name,
    condition: r.condition,
    cooldownMinutes: r.cooldown_minutes,
    slack: r.slack,
    firedCount: r.fired_count,
    lastFiredAt: r.last_fired_at ? new Date(r.last_fired_at) : null,
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
  }));
}
