import { eventMetadata, systemActor } from "../../auth/actor.ts";
import { emptyMemory, matchWeight, observe, type EventFacts, type Firing, type RuleMemory } from "../../domain/alertRule/conditions.ts";
import { alertRuleDecider, alertRuleStream } from "../../domain/alertRule/decider.ts";
import { failureBackoffMs, leasedWorkers, processOwner, type LeasedWorkers, type WorkerContext } from "../../runtime/leasedWorkers.ts";
import { withTenant } from "../../store/db.ts";
import { eventsAfterAlone } from "../../store/events/readTenantLog.ts";
import type { StoredEvent } from "../../store/events/types.ts";
import {
  claimEvaluations,
  isFirstTokenOf,
  readActiveRules,
  readEvaluation,
  releaseEvaluations,
  saveEvaluation,
  type ActiveRule,
  type EvaluationKey,
} from "../../store/queries/alertEvaluationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend, handleCommand } from "../handleCommand.ts";
import { notifySlack } from "./notifySlack.ts";

// Evaluates each tenant's alert rules as its events are appended: one process per tenant at a time
// (a lease, like log stream deliveries), woken by the tenant's new events. A batch of events is
// read after the tenant's cursor and run through every rule; the firings it makes are appended in
// the transaction that moves the cursor and saves the rules' memory, so a crash neither loses nor
// repeats a firing. Slack is told after the commit; a failure to post is recorded as an event.

type Deps = Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "logger" | "metrics" | "events" | "now">;

const BATCH = 500;

class LostEvaluation extends Error {}

export function createAlertEvaluator(deps: Deps, options: { owner?: string; idlePollMs?: number } = {}): LeasedWorkers {
  const owner = options.owner ?? processOwner();
  const leaseSeconds = deps.config.logStreams.leaseSeconds;
  const idlePollMs = options.idlePollMs ?? 10_000;

  async function evaluate({ tenantId }: EvaluationKey, { signal, bell }: WorkerContext): Promise<void> {
    let rules: ActiveRule[] = [];
    let generation = -1;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const position = await readEvaluation(deps.db, tenantId, owner);
        if (!position) return;
        if (position.generation !== generation) {
          rules = await readActiveRules(deps.db, tenantId);
          generation = position.generation;
        }
        if (rules.length === 0) return;
        const events = await eventsAfterAlone(deps.db, tenantId, position.evaluatedSeq, BATCH);
        if (events.length === 0) {
          await bell.wait(idlePollMs);
          continue;
        }
        // Memory of rules that no longer exist is dropped with this save.
        const memory: Record<string, RuleMemory> = Object.fromEntries(rules.map((r) => [r.ruleId, position.memory[r.ruleId] ?? emptyMemory()]));
        const firings: { rule: ActiveRule; firing: Firing }[] = [];
        for (const event of events) {
          for (const rule of rules) {
            if (event.sequence <= rule.fromSeq) continue;
            const weight = matchWeight(rule.condition, event, await factsFor(tenantId, rule, event));
            if (weight === 0) continue;
            const next = observe(rule, memory[rule.ruleId]!, event, weight);
            memory[rule.ruleId] = next.memory;
            if (next.firing) firings.push({ rule, firing: next.firing });
          }
        }
        const recorded = await withTenant(deps.db, tenantId, async (trx) => {
          const fired: { rule: ActiveRule; firing: Firing; sequence: number }[] = [];
          for (const { rule, firing } of firings) {
            const { stored } = await decideAndAppend(trx, {
              tenantId,
              ...alertRuleStream(rule.ruleId),
              decider: alertRuleDecider,
              command: { type: "RecordAlertFiring", ...firing },
              metadata: eventMetadata(systemActor("alert-evaluator", tenantId)),
              occurredAt: deps.now(),
            });
            fired.push({ rule, firing, sequence: stored[0]!.sequence });
          }
          const at = { generation, from: position.evaluatedSeq, to: events.at(-1)!.sequence, memory, leaseSeconds };
          if (!(await saveEvaluation(trx, tenantId, owner, at))) throw new LostEvaluation();
          return fired;
        }).catch((error: unknown) => {
          if (error instanceof LostEvaluation) return null; // changed meanwhile (rules, or another holder): look again
          throw error;
        });
        failures = 0;
        for (const { rule, firing, sequence } of recorded ?? []) if (rule.slack) await tellSlack(tenantId, rule, firing, sequence);
      } catch (error) {
        failures++;
        deps.logger.warn({ err: error, tenantId }, "alerts: evaluating failed; trying again");
        await bell.wait(failureBackoffMs(failures));
      }
    }
  }

  /** What the log alone does not say: whether a token is its requester's first, looked up only when a rule asks. */
  async function factsFor(tenantId: string, rule: ActiveRule, event: StoredEvent): Promise<EventFacts> {
    if (rule.condition.kind !== "new_token_principal" || event.type !== "token.issued") return {};
    const data = event.data as { requester: string; tokenId: string; cached: boolean };
    if (data.cached) return {};
    return { firstTokenOfRequester: await isFirstTokenOf(deps.db, tenantId, { requester: data.requester, tokenId: data.tokenId, issuedAt: event.occurredAt }) };
  }

  async function tellSlack(tenantId: string, rule: ActiveRule, firing: Firing, firedSequence: number) {
    const outcome = await notifySlack(deps, tenantId, rule.slack!, rule, firing);
    if (outcome.ok) return;
    deps.logger.warn({ tenantId, ruleId: rule.ruleId, error: outcome.error }, "alerts: posting to Slack failed");
    await handleCommand(deps.db, {
      tenantId,
      ...alertRuleStream(rule.ruleId),
      decider: alertRuleDecider,
      command: { type: "RecordAlertNotificationFailure", firedSequence, channel: rule.slack!.channel, error: outcome.error.slice(0, 300) },
      metadata: eventMetadata(systemActor("alert-evaluator", tenantId)),
      occurredAt: deps.now(),
    }).catch((error) => deps.logger.warn({ err: error, tenantId }, "alerts: recording a failed notification failed"));
  }

  return leasedWorkers<EvaluationKey>({
    name: "alerts",
    db: deps.db,
    logger: deps.logger,
    events: deps.events,
    leaseSeconds,
    claim: () => claimEvaluations(deps.db, owner, leaseSeconds),
    release: () => releaseEvaluations(deps.db, owner),
    keyOf: (key) => key.tenantId,
    work: evaluate,
    claimAfter: (events) => events.some((e) => e.type === "alert_rule.created"),
  });
}
