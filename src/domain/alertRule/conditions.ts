import type { AlertCondition } from "./events.ts";

// What an alert rule watches for, as pure functions of the events in order: whether an event
// matches (and how many events it stands for), and when matches make an incident. One incident is
// one firing: after it, matches within the rule's cooldown are counted into the next firing rather
// than firing again.

export interface WatchedEvent {
  sequence: number;
  type: string;
  occurredAt: string;
  data: unknown;
  metadata: unknown;
}

/** Facts the log alone does not give, looked up by the evaluator for the events that need them. */
export interface EventFacts {
  /** token.issued: its requester never received a GitHub token before this one. */
  firstTokenOfRequester?: boolean;
}

/** What a rule remembers between events: the matches in its window, its last firing, what the cooldown held back. */
export interface RuleMemory {
  recent: { s: number; t: number; n: number; p: string | null }[];
  lastFiredAt: number | null;
  suppressed: number;
}

export const emptyMemory = (): RuleMemory => ({ recent: [], lastFiredAt: null, suppressed: 0 });

export interface Firing {
  count: number;
  firstSequence: number;
  lastSequence: number;
  principals: string[];
  suppressed: number;
  summary: string;
  level: "warning" | "critical";
}

const field = (value: unknown, key: string): unknown => (typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined);
const subjectOf = (event: WatchedEvent): string | null => {
  const subject = field(field(event.metadata, "actor"), "subject");
  return typeof subject === "string" ? subject : null;
};

/** The event types a condition can match: the evaluator reads only what some rule needs facts for. */
export function watchedTypes(condition: AlertCondition): string[] {
  switch (condition.kind) {
    case "event_count":
      return [condition.eventType];
    case "cross_tenant_access":
      return ["access.denied"];
    case "new_token_principal":
      return ["token.issued"];
    case "installation_suspended_by_provider":
      return ["installation.suspended"];
    case "refresh_token_reuse":
      return ["session.revoked"];
  }
}

/** How many events this one stands for if it matches (a sampled security event folds others in), else 0. */
export function matchWeight(condition: AlertCondition, event: WatchedEvent, facts: EventFacts = {}): number {
  if (!watchedTypes(condition).includes(event.type)) return 0;
  const folded = 1 + (Number(field(event.data, "suppressed")) || 0);
  switch (condition.kind) {
    case "event_count":
      return folded;
    case "cross_tenant_access":
      return field(event.data, "reason") === "cross-tenant" ? folded : 0;
    case "new_token_principal":
      return field(event.data, "cached") !== true && facts.firstTokenOfRequester === true ? 1 : 0;
    case "installation_suspended_by_provider":
      return field(event.data, "by") === "provider" ? 1 : 0;
    case "refresh_token_reuse":
      return field(event.data, "reason") === "refresh-token-reuse" ? 1 : 0;
  }
}

/** The rule's memory after a matching event (`weight` > 0), and the firing it makes, if any. */
export function observe(
  rule: { condition: AlertCondition; cooldownMinutes: number },
  memory: RuleMemory,
  event: WatchedEvent,
  weight: number,
): { memory: RuleMemory; firing?: Firing } {
  const t = Date.parse(event.occurredAt);
  const principal = event.type === "token.issued" ? String(field(event.data, "requester") ?? "") || null : subjectOf(event);
  const match = { s: event.sequence, t, n: weight, p: principal };
  const cooling = memory.lastFiredAt !== null && t - memory.lastFiredAt < rule.cooldownMinutes * 60_000;
  const { condition } = rule;
  let recent = [match];
  if (condition.kind === "event_count") {
    const since = t - condition.windowMinutes * 60_000;
    recent = [...memory.recent.filter((m) => m.t > since), match];
    // Never more entries than the threshold needs: the oldest fold into the next (bounded memory).
    while (recent.length > condition.count) {
      const [oldest, next] = recent;
      recent = [{ ...next!, n: oldest!.n + next!.n, s: oldest!.s, p: next!.p ?? oldest!.p }, ...recent.slice(2)];
    }
    const total = recent.reduce((n, m) => n + m.n, 0);
    if (total < condition.count) return { memory: { ...memory, recent, suppressed: memory.suppressed + (cooling ? weight : 0) } };
  }
  if (cooling) return { memory: { ...memory, recent, suppressed: memory.suppressed + weight } };
  const count = recent.reduce((n, m) => n + m.n, 0);
  const principals = [...new Set(recent.map((m) => m.p).filter((p): p is string => p !== null))].slice(0, 10);
  return {
    memory: { recent: [], lastFiredAt: t, suppressed: 0 },
    firing: {
      count,
      firstSequence: recent[0]!.s,
      lastSequence: event.sequence,
      principals,
      suppressed: memory.suppressed,
      summary: summaryOf(condition, count, principals, event),
      level: condition.kind === "cross_tenant_access" || condition.kind === "refresh_token_reuse" ? "critical" : "warning",
    },
  };
}

function summaryOf(condition: AlertCondition, count: number, principals: string[], event: WatchedEvent): string {
  switch (condition.kind) {
    case "event_count":
      return `${count} ${condition.eventType} events within ${condition.windowMinutes} minute(s)`;
    case "cross_tenant_access":
      return `access to another tenant refused${principals.length ? ` (${principals.join(", ")})` : ""}`;
    case "new_token_principal":
      return `a GitHub token was issued to ${principals[0] ?? "a principal"}, which never received one before`;
    case "installation_suspended_by_provider":
      return `installation ${String(field(event.data, "installationId"))} was suspended by its provider`;
    case "refresh_token_reuse":
      return `a refresh token was used twice; its session family ${String(field(event.data, "familyId"))} was revoked`;
  }
}
