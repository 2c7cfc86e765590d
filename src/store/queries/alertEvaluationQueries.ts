import { sql } from "kysely";
import type { AlertCondition, SlackTarget } from "../../domain/alertRule/events.ts";
import type { RuleMemory } from "../../domain/alertRule/conditions.ts";
import { withPlatform, withTenant, type Db, type Tx } from "../db.ts";

// The alert evaluator's statements: one row per tenant with rules (alert_evaluations), claimed under
// a lease like log stream deliveries, its cursor and its rules' memory moved in the transaction
// that records the firings it decided.

export interface EvaluationKey {
  tenantId: string;
}

/** Takes the free or lapsed evaluations of tenants that have rules, and renews this process's own. */
export async function claimEvaluations(db: Db, owner: string, leaseSeconds: number): Promise<EvaluationKey[]> {
  const { rows } = await withPlatform(db, (trx) =>
    sql<{ tenant_id: string }>`
      update alert_evaluations a
      set lease_owner = ${owner}, lease_until = now() + make_interval(secs => ${leaseSeconds})
      from (select tenant_id from alert_rules where not deleted group by tenant_id) r
      where r.tenant_id = a.tenant_id
        and (a.lease_owner is null or a.lease_until < now() or a.lease_owner = ${owner})
      returning a.tenant_id`.execute(trx),
  );
  return rows.map((r) => ({ tenantId: r.tenant_id }));
}

export async function releaseEvaluations(db: Db, owner: string): Promise<void> {
  await withPlatform(db, (trx) =>
    trx.updateTable("alert_evaluations").set({ lease_owner: null, lease_until: null }).where("lease_owner", "=", owner).execute(),
  );
}

export interface EvaluationPosition {
  evaluatedSeq: number;
  generation: number;
  memory: Record<string, RuleMemory>;
}

/** Where the tenant's evaluation stands, if this process still holds it. */
export async function readEvaluation(db: Db, tenantId: string, owner: string): Promise<EvaluationPosition | null> {
  const row = await withTenant(db, tenantId, (trx) =>
    trx
      .selectFrom("alert_evaluations")
      .select(["evaluated_seq", "generation", "memory"])
      .where("tenant_id", "=", tenantId)
      .where("lease_owner", "=", owner)
      .where("lease_until", ">", sql<Date>`now()`)
      .executeTakeFirst(),
  );
  if (!row) return null;
  return { evaluatedSeq: Number(row.evaluated_seq), generation: row.generation, memory: row.memory as unknown as Record<string, RuleMemory> };
}

/** Moves the cursor from `from` to `to` with the rules' memory; false when no longer this process's at this generation and position. */
export async function saveEvaluation(
  trx: Tx,
  tenantId: string,
  owner: string,
  at: { generation: number; from: number; to: number; memory: Record<string, RuleMemory>; leaseSeconds: number },
): Promise<boolean> {
  const result = await sql`
    update alert_evaluations
    set evaluated_seq = ${at.to}, memory = ${JSON.stringify(at.memory)}::jsonb, lease_until = now() + make_interval(secs => ${at.leaseSeconds})
    where tenant_id = ${tenantId} and lease_owner = ${owner} and generation = ${at.generation} and evaluated_seq = ${at.from}`.execute(trx);
  return Number(result.numAffectedRows ?? 0) === 1;
}

export interface ActiveRule {
  ruleId: string;
  name: string;
  condition: AlertCondition;
  cooldownMinutes: number;
  slack: SlackTarget | null;
  /** The sequence of the event that created the rule: it watches what comes after. */
  fromSeq: number;
}

export async function readActiveRules(db: Db, tenantId: string): Promise<ActiveRule[]> {
  const { rows } = await withTenant(db, tenantId, (trx) =>
    sql<{
      rule_id: string;
      name: string;
      condition: AlertCondition;
      cooldown_minutes: number;
      slack: SlackTarget | null;
      from_seq: string | number;
    }>`
      select r.rule_id, r.name, r.condition, r.cooldown_minutes, r.slack,
             (select e.tenant_seq from events e
              where e.tenant_id = r.tenant_id and e.stream_type = 'alert_rule' and e.stream_id = r.rule_id and e.stream_version = 1) as from_seq
      from alert_rules r where r.tenant_id = ${tenantId} and not r.deleted
      order by r.created_at, r.rule_id`.execute(trx),
  );
  return rows.map((r) => ({
    ruleId: r.rule_id,
    name: r.name,
    condition: r.condition,
    cooldownMinutes: r.cooldown_minutes,
    slack: r.slack,
    fromSeq: Number(r.from_seq),
  }));
}

/** Whether this token is the requester's first GitHub token (by issue time, then token id). */
export async function isFirstTokenOf(db: Db, tenantId: string, token: { requester: string; tokenId: string; issuedAt: string }): Promise<boolean> {
  const row = await withTenant(db, tenantId, (trx) =>
    sql<{ earlier: boolean }>`
      select exists (
        select 1 from github_tokens
        where tenant_id = ${tenantId} and requester = ${token.requester}
          and (issued_at, token_id) < (${token.issuedAt}::timestamptz, ${token.tokenId})
      ) as earlier`.execute(trx),
  );
  return !row.rows[0]!.earlier;
}
