import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useEffect, useId, useState } from "react";
import { type CombinedError, useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql, type ResultOf } from "../graphql.ts";
import { useReread } from "../liveEvents.ts";
import { fieldProblem } from "./Agents.tsx";

// Alert rules over the tenant's log, a section of the Log streams page (both are the admins'): the
// rules with how often each fired, a form for a new one (posting to one of the tenant's Slack
// installations if asked), and the last firings (alert.fired events of the log, for those who may
// read it). The page's subscription bumps `version` on alert events: the section reads again.

const AlertRulesQuery = graphql(`
  query AlertRules {
    alertRules {
      id
      name
      condition
      cooldownMinutes
      slack {
        installationId
        channel
      }
      firedCount
      lastFiredAt
    }
  }
`);

type AlertRule = ResultOf<typeof AlertRulesQuery>["alertRules"][number];

const SlackInstallationsQuery = graphql(`
  query SlackInstallations {
    installations(first: 100, platform: slack, status: active) {
      nodes {
        id
        app
        account {
          login
        }
      }
    }
  }
`);

const FiringsQuery = graphql(`
  query AlertFirings {
    auditLog(first: 20, order: NEWEST_FIRST, filter: { types: ["alert.fired"] }) {
      nodes {
        sequence
        occurredAt
        data
      }
    }
  }
`);

const CreateAlertRule = graphql(`
  mutation CreateAlertRule($input: CreateAlertRuleInput!) {
    createAlertRule(input: $input) {
      id
      name
    }
  }
`);

const DeleteAlertRule = graphql(`
  mutation DeleteAlertRule($id: ID!) {
    deleteAlertRule(id: $id)
  }
`);

type ConditionKind = "event_count" | "cross_tenant_access" | "new_token_principal" | "installation_suspended_by_provider" | "refresh_token_reuse";

const CONDITIONS: { value: ConditionKind; label: string }[] = [
  { value: "event_count", label: "Events of a type, counted in a window" },
  { value: "cross_tenant_access", label: "An access reaching for another tenant" },
  { value: "new_token_principal", label: "A GitHub token for a principal never seen before" },
  { value: "installation_suspended_by_provider", label: "An installation suspended by its provider" },
  { value: "refresh_token_reuse", label: "A refresh token used twice (stolen session)" },
];

interface Condition {
  kind: ConditionKind;
  eventType?: string;
  count?: number;
  windowMinutes?: number;
}

/** A rule's condition in words. */
export function conditionText(condition: unknown): string {
  const c = (condition ?? {}) as Condition;
  switch (c.kind) {
    case "event_count":
      return `${c.count} or more ${c.eventType} event${c.count === 1 ? "" : "s"} within ${c.windowMinutes} minute${c.windowMinutes === 1 ? "" : "s"}`;
    case "cross_tenant_access":
      return "an access refused for reaching another tenant";
    case "new_token_principal":
      return "a GitHub token issued to a principal that never received one";
    case "installation_suspended_by_provider":
      return "an installation suspended by GitHub, Slack or Atlassian";
    case "refresh_token_reuse":
      return "a session's refresh token used twice (its sessions revoked)";
    default:
      return JSON.stringify(condition);
  }
}

interface Firing {
  ruleId?: string;
  name?: string;
  level?: "warning" | "critical";
  summary?: string;
  count?: number;
  suppressed?: number;
  principals?: string[];
}

export function AlertsSection({ viewer, version }: { viewer: Viewer; version: number }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: AlertRulesQuery });
  const refresh = useReread(fetching || stale, reexecute);
  const mayReadInstallations = viewer.permissions.includes("installation:read");
  const mayReadLog = viewer.permissions.includes("audit:read");
  const [installations] = useQuery({ query: SlackInstallationsQuery, pause: !mayReadInstallations });
  useEffect(() => {
    if (version > 0) refresh();
  }, [version, refresh]);
  const [deleted, remove] = useMutation(DeleteAlertRule);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const report = (error: CombinedError | undefined, done: string) => {
    setMessage(error ? { error: true, text: describeError(error) } : { error: false, text: done });
    if (!error) refresh();
  };

  const slack = installations.data?.installations.nodes ?? [];
  const workspace = new Map(slack.map((i) => [i.id, i.account.login]));
  const rules = data?.alertRules ?? [];
  const target = (rule: AlertRule) =>
    rule.slack ? `${rule.slack.channel} in ${workspace.get(rule.slack.installationId) ?? `installation ${rule.slack.installationId}`}` : "none (the log only)";

  return (
    <section aria-labelledby="alerts-heading" data-testid="alerts">
      <h2 id="alerts-heading">Alerts</h2>
      <p className="hint">
        A rule watches the events appended after its creation. Each incident is an <code>alert.fired</code> event of the log (log streams deliver it like any
        other) and, when the rule names a channel, a Slack message through the tenant's own Slack installation. Within a rule's cooldown, matches are counted
        into its next firing.
      </p>
      <h3 id="rules-heading">Rules</h3>
      <ErrorAlert error={error} />
      {!data ? (
        <p aria-busy={fetching}>Loading…</p>
      ) : rules.length === 0 ? (
        <p>No alert rules yet.</p>
      ) : (
        <table data-testid="alert-rules" aria-labelledby="rules-heading">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Fires on</th>
              <th scope="col">Cooldown</th>
              <th scope="col">Slack</th>
              <th scope="col">Fired</th>
              <th scope="col">Last fired</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rules.map((r) => (
              <tr key={r.id} data-testid={`rule-${r.name}`}>
                <th scope="row">{r.name}</th>
                <td>{conditionText(r.condition)}</td>
                <td>{r.cooldownMinutes === 0 ? "none" : `${r.cooldownMinutes} min`}</td>
                <td>{target(r)}</td>
                <td data-testid={`fired-${r.name}`}>{r.firedCount === 1 ? "once" : `${r.firedCount} times`}</td>
                <td>{r.lastFiredAt ? <time dateTime={r.lastFiredAt}>{new Date(r.lastFiredAt).toLocaleString()}</time> : "never"}</td>
                <td>
                  <button
                    type="button"
                    className="danger"
                    aria-label={`Delete alert rule ${r.name}`}
                    disabled={deleted.fetching}
                    onClick={async () => {
                      if (!confirm(`Delete the alert rule ${r.name}? It fires no more.`)) return;
                      report((await remove({ id: r.id })).error, `Alert rule ${r.name} deleted.`);
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {message && (
        <p role={message.error ? "alert" : "status"} className={message.error ? "error" : undefined}>
          {message.text}
        </p>
      )}
      <CreateRuleForm slack={slack} mayReadInstallations={mayReadInstallations} onCreated={refresh} />
      {mayReadLog && <Firings version={version} />}
    </section>
  );
}

type SlackChoice = ResultOf<typeof SlackInstallationsQuery>["installations"]["nodes"][number];

function CreateRuleForm({ slack, mayReadInstallations, onCreated }: { slack: SlackChoice[]; mayReadInstallations: boolean; onCreated(): void }) {
  const id = useId();
  const empty = {
    name: "",
    kind: "event_count" as ConditionKind,
    eventType: "",
    count: "20",
    windowMinutes: "5",
    cooldown: "15",
    installationId: "",
    channel: "",
  };
  const [form, setForm] = useState(empty);
  const [problem, setProblem] = useState<{ field?: string; text: string } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [state, create] = useMutation(CreateAlertRule);
  const set = (key: keyof typeof empty) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [key]: e.target.value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setDone(null);
    const counted = form.kind === "event_count";
    const result = await create({
      input: {
        name: form.name.trim(),
        condition: {
          kind: form.kind,
          eventType: counted ? form.eventType.trim() : undefined,
          count: counted ? Number(form.count) : undefined,
          windowMinutes: counted ? Number(form.windowMinutes) : undefined,
        },
        cooldownMinutes: Number(form.cooldown),
        slack: form.installationId ? { installationId: form.installationId, channel: form.channel.trim() } : undefined,
      },
    });
    if (result.error || !result.data) return setProblem(result.error ? fieldProblem(result.error) : { text: "Keyplane did not answer." });
    setDone(`Alert rule ${result.data.createAlertRule.name} created: it watches the events from now on.`);
    setForm(empty);
    onCreated();
  }

  // The API names the field of a refusal: "name", "condition" (its eventType, count or window), "cooldownMinutes", "slack".
  const on = (field: string) => (problem?.field === field ? problem.text : undefined);
  const general = problem && !["name", "condition", "cooldownMinutes", "slack"].includes(problem.field ?? "") ? problem.text : null;
  const problemAt = (field: string) =>
    on(field) && (
      <p id={`${id}-${field}-problem`} role="alert" className="error field-problem">
        {on(field)}
      </p>
    );
  const describedBy = (field: string, hint?: string) => [hint, on(field) ? `${id}-${field}-problem` : ""].filter(Boolean).join(" ") || undefined;

  return (
    <section aria-labelledby={`${id}-heading`}>
      <h3 id={`${id}-heading`}>Create an alert rule</h3>
      <form className="form" onSubmit={submit} aria-label="Create an alert rule">
        <div className="field">
          <label htmlFor={`${id}-name`}>Rule name</label>
          <input
            id={`${id}-name`}
            value={form.name}
            onChange={set("name")}
            required
            placeholder="Brute force"
            aria-invalid={on("name") ? true : undefined}
            aria-describedby={describedBy("name")}
          />
          {problemAt("name")}
        </div>
        <div className="field">
          <label htmlFor={`${id}-kind`}>Fires on</label>
          <select id={`${id}-kind`} value={form.kind} onChange={set("kind")} aria-describedby={describedBy("condition")}>
            {CONDITIONS.map((c) => (
              <option key={c.value} value={c.value}>
                {c.label}
              </option>
            ))}
          </select>
        </div>
        {form.kind === "event_count" && (
          <fieldset className="settings row-fields">
            <legend>Counted events</legend>
            <div className="field">
              <label htmlFor={`${id}-type`}>Event type</label>
              <input
                id={`${id}-type`}
                value={form.eventType}
                onChange={set("eventType")}
                required
                spellCheck={false}
                placeholder="auth.failed"
                aria-invalid={on("condition") ? true : undefined}
                aria-describedby={describedBy("condition")}
              />
            </div>
            <div className="field">
              <label htmlFor={`${id}-count`}>At least (events)</label>
              <input id={`${id}-count`} type="number" min="1" max="1000" value={form.count} onChange={set("count")} required />
            </div>
            <div className="field">
              <label htmlFor={`${id}-window`}>Within (minutes)</label>
              <input id={`${id}-window`} type="number" min="1" max="1440" value={form.windowMinutes} onChange={set("windowMinutes")} required />
            </div>
          </fieldset>
        )}
        {problemAt("condition")}
        <div className="field">
          <label htmlFor={`${id}-cooldown`}>Cooldown (minutes)</label>
          <input
            id={`${id}-cooldown`}
            type="number"
            min="0"
            max="1440"
            value={form.cooldown}
            onChange={set("cooldown")}
            required
            aria-invalid={on("cooldownMinutes") ? true : undefined}
            aria-describedby={describedBy("cooldownMinutes", `${id}-cooldown-hint`)}
          />
          <span id={`${id}-cooldown-hint`} className="hint">
            after a firing, matches within this time are counted into the next one; 0 fires on every match
          </span>
          {problemAt("cooldownMinutes")}
        </div>
        <fieldset className="settings">
          <legend>Slack message (optional)</legend>
          <div className="field">
            <label htmlFor={`${id}-installation`}>Slack workspace</label>
            <select
              id={`${id}-installation`}
              value={form.installationId}
              onChange={set("installationId")}
              disabled={slack.length === 0}
              aria-describedby={`${id}-installation-hint`}
            >
              <option value="">No message: the log only</option>
              {slack.map((i) => (
                <option key={i.id} value={i.id}>
                  {i.account.login}
                  {i.app ? ` (${i.app})` : ""}
                </option>
              ))}
            </select>
            <span id={`${id}-installation-hint`} className="hint">
              {!mayReadInstallations
                ? "your role does not read installations"
                : slack.length === 0
                  ? "the tenant has no active Slack installation (Installations page)"
                  : "one of the tenant's active Slack installations; the app needs chat:write and must be in the channel"}
            </span>
          </div>
          {form.installationId && (
            <div className="field">
              <label htmlFor={`${id}-channel`}>Channel</label>
              <input
                id={`${id}-channel`}
                value={form.channel}
                onChange={set("channel")}
                required
                placeholder="#security"
                spellCheck={false}
                aria-invalid={on("slack") ? true : undefined}
                aria-describedby={describedBy("slack")}
              />
            </div>
          )}
          {problemAt("slack")}
        </fieldset>
        <button type="submit" disabled={state.fetching}>
          Create alert rule
        </button>
        {general && (
          <p role="alert" className="error">
            {general}
          </p>
        )}
        {done && <p role="status">{done}</p>}
      </form>
    </section>
  );
}

/** The last 20 firings, newest first, read again when the page hears of a new one. */
function Firings({ version }: { version: number }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: FiringsQuery });
  const refresh = useReread(fetching || stale, reexecute);
  useEffect(() => {
    if (version > 0) refresh();
  }, [version, refresh]);
  const firings = data?.auditLog.nodes ?? [];
  return (
    <section aria-labelledby="firings-heading">
      <h3 id="firings-heading">Recent firings</h3>
      <ErrorAlert error={error} />
      {!data ? (
        <p aria-busy={fetching}>Loading…</p>
      ) : firings.length === 0 ? (
        <p>No alert has fired.</p>
      ) : (
        <table data-testid="alert-firings" aria-labelledby="firings-heading">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Rule</th>
              <th scope="col">Level</th>
              <th scope="col">What happened</th>
              <th scope="col">Principals</th>
              <th scope="col">Sequence</th>
            </tr>
          </thead>
          <tbody>
            {firings.map((f) => {
              const firing = (f.data ?? {}) as Firing;
              return (
                <tr key={f.sequence}>
                  <td>
                    <time dateTime={f.occurredAt}>{new Date(f.occurredAt).toLocaleString()}</time>
                  </td>
                  <td>{firing.name}</td>
                  <td>
                    <span className={`badge level-${firing.level ?? "warning"}`}>{firing.level}</span>
                  </td>
                  <td>
                    {firing.summary}
                    {firing.suppressed ? <div className="hint">{firing.suppressed} more held back by the cooldown before it</div> : null}
                  </td>
                  <td>{firing.principals?.join(", ") || "—"}</td>
                  <td>{f.sequence}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
