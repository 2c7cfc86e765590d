import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, type ReactNode, useEffect, useId, useRef, useState } from "react";
import { type CombinedError, useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql, type ResultOf } from "../graphql.ts";
import { LiveHeading } from "../LiveHeading.tsx";
import { type LiveEvent, useReread, useTenantEvents } from "../liveEvents.ts";
import { AlertsSection } from "./Alerts.tsx";
import { fieldProblem } from "./Agents.tsx";
import { splitTags } from "./EnrollmentKeys.tsx";

// The tenant's log streams (a webhook, Splunk HEC, Datadog Logs) with their health and lag, kept
// current by the tenant's events (each change of health is a log_stream.health_changed event); the
// tenant's alert rules and their recent firings below (AlertsSection). A webhook's signing secret is
// shown once, when the stream is created or its secret rotated.

const LogStreamsQuery = graphql(`
  query LogStreams {
    logStreams {
      id
      name
      kind
      destination
      settings
      filter {
        types
        securityOnly
      }
      secretFingerprint
      state
      health
      lastError
      deliveredSequence
      lagEvents
      lagSeconds
      failedAttempts
      lastSuccessAt
      nextAttemptAt
    }
  }
`);

type LogStream = ResultOf<typeof LogStreamsQuery>["logStreams"][number];

const CreateLogStream = graphql(`
  mutation CreateLogStream($input: CreateLogStreamInput!) {
    createLogStream(input: $input) {
      secret
      logStream {
        id
        name
        secretFingerprint
      }
    }
  }
`);

const RotateSecret = graphql(`
  mutation RotateLogStreamSecret($id: ID!, $overlapSeconds: Int) {
    rotateLogStreamSecret(id: $id, overlapSeconds: $overlapSeconds) {
      secret
      logStream {
        id
        name
        secretFingerprint
      }
    }
  }
`);

const PauseStream = graphql(`
  mutation PauseLogStream($id: ID!) {
    pauseLogStream(id: $id) {
      id
      state
      health
    }
  }
`);

const ResumeStream = graphql(`
  mutation ResumeLogStream($id: ID!) {
    resumeLogStream(id: $id) {
      id
      state
      health
    }
  }
`);

const ReplayStream = graphql(`
  mutation ReplayLogStream($id: ID!, $from: Int!) {
    replayLogStream(id: $id, from: $from) {
      id
      deliveredSequence
      lagEvents
    }
  }
`);

const DeleteStream = graphql(`
  mutation DeleteLogStream($id: ID!) {
    deleteLogStream(id: $id)
  }
`);

/** Events that change what this page shows (the streams', the alert rules' and their firings). */
const LOG_STREAM_EVENTS = [
  "log_stream.created",
  "log_stream.updated",
  "log_stream.secret_rotated",
  "log_stream.paused",
  "log_stream.resumed",
  "log_stream.deleted",
  "log_stream.replayed",
  "log_stream.health_changed",
];
const ALERT_EVENTS = ["alert_rule.created", "alert_rule.deleted", "alert.fired", "alert.notification_failed"];

const KINDS = [
  { value: "webhook", label: "HTTPS webhook (Standard Webhooks)" },
  { value: "splunk", label: "Splunk HTTP Event Collector" },
  { value: "datadog", label: "Datadog Logs" },
] as const;
type Kind = (typeof KINDS)[number]["value"];

const DATADOG_SITES = ["datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ddog-gov.com"];

/** A secret shown once: the webhook's on creation, or the new one of a rotation. */
interface ShownSecret {
  streamName: string;
  secret: string;
  fingerprint: string;
  /** A rotation's overlap: how long the previous secret still signs beside it. */
  overlapSeconds?: number;
}

/** Delivery is not an event: while a stream is behind, its lag is read again after these many seconds (doubling). */
const LAG_REREAD_FIRST = 2;
const LAG_REREAD_MAX = 30;

export function LogStreamsPage({ viewer }: { viewer: Viewer }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: LogStreamsQuery });
  const refresh = useReread(fetching || stale, reexecute);
  const [alertsVersion, setAlertsVersion] = useState(0);
  const live = useTenantEvents(viewer, [...LOG_STREAM_EVENTS, ...ALERT_EVENTS], (event: LiveEvent | null) => {
    // Every event the page receives is also one the streams deliver: their lag changes too.
    refresh();
    if (!event || event.type.startsWith("alert")) setAlertsVersion((v) => v + 1);
  });
  useLagRereads(data?.logStreams, refresh);
  const [shown, setShown] = useState<ShownSecret | null>(null);
  const streams = data?.logStreams ?? [];

  return (
    <>
      <LiveHeading title="Log streams" state={live.state} refresh={refresh} />
      <p className="hint">
        A log stream delivers the tenant's events as they are appended, in order and at least once, to an HTTPS webhook (signed per Standard Webhooks), Splunk's
        HTTP Event Collector or Datadog Logs. Keyplane keeps the destination's URL and secret encrypted and shows only the host and path, and the secret's
        fingerprint.
      </p>
      <ErrorAlert error={error} />
      <ErrorAlert error={live.error} />
      {!data ? (
        <p aria-busy={fetching}>Loading…</p>
      ) : streams.length === 0 ? (
        <p>No log streams yet: create one below.</p>
      ) : (
        <StreamTable streams={streams} onChanged={refresh} onSecret={setShown} />
      )}
      {shown && <OneTimeSecret shown={shown} onDone={() => setShown(null)} />}
      <CreateStreamForm
        onCreated={(created) => {
          refresh();
          if (created) setShown(created);
        }}
      />
      {viewer.permissions.includes("alert-rule:manage") && <AlertsSection viewer={viewer} version={alertsVersion} />}
    </>
  );
}

/**
 * A stream's deliveries raise no event unless its health changes, so the lag an event left behind
 * would stay on the page: while an active stream (not stopped by a refusal) is behind, its lag is
 * read again after 2 s, then 4, 8… up to 30 s, until it caught up.
 */
function useLagRereads(streams: readonly LogStream[] | undefined, refresh: () => void) {
  const delay = useRef(LAG_REREAD_FIRST);
  // After each read (a new `streams`): another one later if a stream is still behind.
  useEffect(() => {
    const behind = streams?.some((s) => s.state === "active" && s.health !== "error" && s.lagEvents > 0) ?? false;
    if (!behind) {
      delay.current = LAG_REREAD_FIRST;
      return;
    }
    const timer = setTimeout(refresh, delay.current * 1000);
    delay.current = Math.min(delay.current * 2, LAG_REREAD_MAX);
    return () => clearTimeout(timer);
  }, [streams, refresh]);
}

const HEALTH_WORDS: Record<LogStream["health"], string> = {
  pending: "nothing delivered yet",
  healthy: "delivering",
  degraded: "failing, retrying",
  error: "refused by the receiver: stopped",
};

/** The stream's health as a badge: a mark and a word, not a colour alone. */
function HealthBadge({ stream }: { stream: LogStream }) {
  const mark = { pending: "…", healthy: "✓", degraded: "!", error: "✕" }[stream.health];
  return (
    <span className={`badge health-${stream.health}`} data-testid={`health-${stream.name}`} title={HEALTH_WORDS[stream.health]}>
      <span aria-hidden="true">{mark} </span>
      {stream.health}
    </span>
  );
}

/** 75 → "1 min 15 s" */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

function lagText(stream: LogStream): string {
  if (stream.lagEvents === 0) return "caught up";
  return `${stream.lagEvents} event${stream.lagEvents === 1 ? "" : "s"}, ${duration(stream.lagSeconds)} behind`;
}

const when = (iso: string | null | undefined) => (iso ? <time dateTime={iso}>{new Date(iso).toLocaleString()}</time> : "never");

function filterText(filter: LogStream["filter"]): string {
  const parts = [filter.types?.length ? filter.types.join(", ") : "", filter.securityOnly ? "security events only" : ""].filter(Boolean);
  return parts.length === 0 ? "every event" : parts.join("; ");
}

function settingsText(settings: unknown): string {
  if (!settings || typeof settings !== "object") return "";
  return Object.entries(settings as Record<string, unknown>)
    .filter(([, value]) => value !== undefined && value !== null && value !== "")
    .map(([key, value]) => `${key}: ${String(value)}`)
    .join(", ");
}

type RowForm = { id: string; form: "rotate" | "replay" } | null;

function StreamTable({ streams, onChanged, onSecret }: { streams: LogStream[]; onChanged(): void; onSecret(shown: ShownSecret): void }) {
  const [paused, pause] = useMutation(PauseStream);
  const [resumed, resume] = useMutation(ResumeStream);
  const [deleted, remove] = useMutation(DeleteStream);
  const [open, setOpen] = useState<RowForm>(null);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const busy = paused.fetching || resumed.fetching || deleted.fetching;

  const report = (error: CombinedError | undefined, done: string) => {
    setMessage(error ? { error: true, text: describeError(error) } : { error: false, text: done });
    if (!error) onChanged();
  };

  return (
    <>
      <table data-testid="log-streams">
        <caption className="visually-hidden">The tenant's log streams, oldest first</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Kind</th>
            <th scope="col">Destination</th>
            <th scope="col">Health</th>
            <th scope="col">Lag</th>
            <th scope="col">Last success</th>
            <th scope="col">Last error</th>
            <th scope="col">State</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {streams.map((s) => {
            const extra = settingsText(s.settings);
            return [
              <tr key={s.id} data-testid={`stream-${s.name}`}>
                <th scope="row">{s.name}</th>
                <td>{s.kind}</td>
                <td>
                  <code className="json-inline">{s.destination}</code>
                  <div className="hint">
                    {filterText(s.filter)}
                    {extra ? ` · ${extra}` : ""}
                  </div>
                  <div className="hint">
                    secret <code>{s.secretFingerprint}</code>
                  </div>
                </td>
                <td>
                  <HealthBadge stream={s} />
                  {s.health === "degraded" && s.nextAttemptAt && (
                    <div className="hint">
                      {s.failedAttempts} failed; next try <time dateTime={s.nextAttemptAt}>{new Date(s.nextAttemptAt).toLocaleTimeString()}</time>
                    </div>
                  )}
                </td>
                <td data-testid={`lag-${s.name}`}>{lagText(s)}</td>
                <td>{when(s.lastSuccessAt)}</td>
                <td data-testid={`last-error-${s.name}`}>{s.lastError ? <span className="error wrap">{s.lastError}</span> : "none"}</td>
                <td data-testid={`state-${s.name}`}>{s.state}</td>
                <td>
                  <div className="actions">
                    {s.state === "active" && (
                      <button
                        type="button"
                        aria-label={`Pause ${s.name}`}
                        disabled={busy}
                        onClick={async () => report((await pause({ id: s.id })).error, `${s.name} paused: its events keep their place.`)}
                      >
                        Pause
                      </button>
                    )}
                    {(s.state === "paused" || s.health === "error") && (
                      <button
                        type="button"
                        aria-label={`${s.health === "error" ? "Resume (retry)" : "Resume"} ${s.name}`}
                        disabled={busy}
                        onClick={async () => report((await resume({ id: s.id })).error, `${s.name} resumed.`)}
                      >
                        {s.health === "error" ? "Resume (retry)" : "Resume"}
                      </button>
                    )}
                    {s.kind === "webhook" && (
                      <button
                        type="button"
                        aria-label={`Rotate secret of ${s.name}`}
                        aria-expanded={open?.id === s.id && open.form === "rotate"}
                        onClick={() => setOpen(open?.id === s.id && open.form === "rotate" ? null : { id: s.id, form: "rotate" })}
                      >
                        Rotate secret
                      </button>
                    )}
                    <button
                      type="button"
                      aria-label={`Replay ${s.name}`}
                      aria-expanded={open?.id === s.id && open.form === "replay"}
                      onClick={() => setOpen(open?.id === s.id && open.form === "replay" ? null : { id: s.id, form: "replay" })}
                    >
                      Replay
                    </button>
                    <button
                      type="button"
                      className="danger"
                      aria-label={`Delete ${s.name}`}
                      disabled={busy}
                      onClick={async () => {
                        if (!confirm(`Delete the log stream ${s.name}? Delivery stops and its URL and secret are forgotten.`)) return;
                        report((await remove({ id: s.id })).error, `${s.name} deleted.`);
                      }}
                    >
                      Delete
                    </button>
                  </div>
                </td>
              </tr>,
              open?.id === s.id && (
                <tr key={`${s.id}-form`} className="row-form-row">
                  <td colSpan={9}>
                    {open.form === "rotate" ? (
                      <RotateForm
                        stream={s}
                        onCancel={() => setOpen(null)}
                        onRotated={(shown) => {
                          setOpen(null);
                          setMessage(null);
                          onSecret(shown);
                          onChanged();
                        }}
                      />
                    ) : (
                      <ReplayForm
                        stream={s}
                        onCancel={() => setOpen(null)}
                        onReplayed={(from) => {
                          setOpen(null);
                          report(undefined, `${s.name} delivers again from sequence ${from}.`);
                        }}
                      />
                    )}
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
      {message && (
        <p role={message.error ? "alert" : "status"} className={message.error ? "error" : undefined}>
          {message.text}
        </p>
      )}
    </>
  );
}

function RotateForm({ stream, onCancel, onRotated }: { stream: LogStream; onCancel(): void; onRotated(shown: ShownSecret): void }) {
  const id = useId();
  const [hours, setHours] = useState("24");
  const [problem, setProblem] = useState<string | null>(null);
  const [state, rotate] = useMutation(RotateSecret);
  async function submit(event: FormEvent) {
    event.preventDefault();
    const overlapSeconds = Math.round(Number(hours) * 3600);
    const result = await rotate({ id: stream.id, overlapSeconds });
    const answer = result.data?.rotateLogStreamSecret;
    if (result.error || !answer?.secret) return setProblem(describeError(result.error ?? new Error("Keyplane answered no secret.")));
    onRotated({ streamName: stream.name, secret: answer.secret, fingerprint: answer.logStream.secretFingerprint, overlapSeconds });
  }
  return (
    <form className="row-form" onSubmit={submit} aria-label={`Rotate the secret of ${stream.name}`}>
      <label htmlFor={`${id}-overlap`}>Previous secret still signs for (hours)</label>
      <input
        id={`${id}-overlap`}
        type="number"
        min="0"
        max="168"
        step="any"
        value={hours}
        onChange={(e) => setHours(e.target.value)}
        required
        aria-describedby={`${id}-overlap-hint`}
      />
      <span id={`${id}-overlap-hint`} className="hint">
        up to 168 (7 days); 0 stops the previous secret at once
      </span>
      <button type="submit" disabled={state.fetching}>
        Rotate
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </form>
  );
}

function ReplayForm({ stream, onCancel, onReplayed }: { stream: LogStream; onCancel(): void; onReplayed(from: number): void }) {
  const id = useId();
  const [from, setFrom] = useState("1");
  const [problem, setProblem] = useState<string | null>(null);
  const [state, replay] = useMutation(ReplayStream);
  async function submit(event: FormEvent) {
    event.preventDefault();
    const result = await replay({ id: stream.id, from: Number(from) });
    if (result.error) return setProblem(describeError(result.error));
    onReplayed(Number(from));
  }
  return (
    <form className="row-form" onSubmit={submit} aria-label={`Replay ${stream.name}`}>
      <label htmlFor={`${id}-from`}>Deliver again from sequence</label>
      <input
        id={`${id}-from`}
        type="number"
        min="1"
        step="1"
        value={from}
        onChange={(e) => setFrom(e.target.value)}
        required
        aria-describedby={`${id}-from-hint`}
      />
      <span id={`${id}-from-hint`} className="hint">
        delivered up to {stream.deliveredSequence}; receivers deduplicate by event id
      </span>
      <button type="submit" disabled={state.fetching}>
        Replay
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </form>
  );
}

/** The secret, once: kept in this component only, gone with "Done" or on leaving the page. */
function OneTimeSecret({ shown, onDone }: { shown: ShownSecret; onDone(): void }) {
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(shown.secret);
      setCopied("Secret copied.");
    } catch {
      setCopied("Could not copy: select the secret and copy it.");
    }
  };
  const rotated = shown.overlapSeconds !== undefined;
  return (
    <section className="panel new-key" aria-labelledby="new-secret-heading" data-testid="new-secret">
      <h2 id="new-secret-heading">
        {rotated ? "New signing secret" : "Signing secret"} of {shown.streamName}
      </h2>
      <p>
        <strong>Shown once:</strong> copy it now and give it to the receiver, which verifies each message's <code>webhook-signature</code> with it. Keyplane
        keeps it encrypted and shows only its fingerprint, <code>{shown.fingerprint}</code>.
        {rotated &&
          (shown.overlapSeconds! > 0
            ? ` The previous secret signs beside it for ${duration(shown.overlapSeconds!)}: switch the receiver within that time.`
            : " The previous secret signs no more.")}
      </p>
      <div className="copyable">
        <code data-testid="stream-secret">{shown.secret}</code>
        <button type="button" onClick={copy}>
          Copy secret
        </button>
      </div>
      {copied && <p role="status">{copied}</p>}
      <button type="button" onClick={onDone}>
        Done (forget the secret)
      </button>
    </section>
  );
}

/** A labelled input with its hint and the API's problem for it (announced, and named by aria-describedby). */
function Field(props: {
  label: string;
  value: string;
  onChange(value: string): void;
  problem?: string;
  hint?: ReactNode;
  required?: boolean;
  type?: string;
  placeholder?: string;
  autoComplete?: string;
}) {
  const id = useId();
  const described = [props.hint ? `${id}-hint` : "", props.problem ? `${id}-problem` : ""].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        type={props.type ?? "text"}
        value={props.value}
        required={props.required}
        placeholder={props.placeholder}
        autoComplete={props.autoComplete}
        spellCheck={false}
        aria-invalid={props.problem ? true : undefined}
        aria-describedby={described || undefined}
        onChange={(event) => props.onChange(event.target.value)}
      />
      {props.hint && (
        <span id={`${id}-hint`} className="hint">
          {props.hint}
        </span>
      )}
      {props.problem && (
        <p id={`${id}-problem`} role="alert" className="error field-problem">
          {props.problem}
        </p>
      )}
    </div>
  );
}

const EMPTY_FORM = {
  name: "",
  kind: "webhook" as Kind,
  url: "",
  secret: "",
  index: "",
  source: "",
  sourcetype: "",
  site: "",
  service: "",
  ddtags: "",
  types: "",
  securityOnly: false,
};

/** The settings of the chosen kind, without the empty ones. */
function settingsOf(form: typeof EMPTY_FORM): Record<string, string> | undefined {
  const keys = form.kind === "splunk" ? (["index", "source", "sourcetype"] as const) : form.kind === "datadog" ? (["site", "service", "ddtags"] as const) : [];
  const settings = Object.fromEntries(keys.map((k) => [k, form[k].trim()]).filter(([, v]) => v));
  return Object.keys(settings).length > 0 ? settings : undefined;
}

function CreateStreamForm({ onCreated }: { onCreated(shown: ShownSecret | null): void }) {
  const id = useId();
  const [form, setForm] = useState(EMPTY_FORM);
  const [problem, setProblem] = useState<{ field?: string; text: string } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [state, create] = useMutation(CreateLogStream);
  const set =
    <K extends keyof typeof EMPTY_FORM>(key: K) =>
    (value: (typeof EMPTY_FORM)[K]) =>
      setForm((f) => ({ ...f, [key]: value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setDone(null);
    const types = splitTags(form.types);
    const result = await create({
      input: {
        name: form.name.trim(),
        kind: form.kind,
        url: form.url.trim() || undefined,
        secret: form.kind !== "webhook" && form.secret ? form.secret : undefined,
        settings: settingsOf(form),
        filter: types.length > 0 || form.securityOnly ? { types: types.length > 0 ? types : undefined, securityOnly: form.securityOnly } : undefined,
      },
    });
    const answer = result.data?.createLogStream;
    if (result.error || !answer) return setProblem(result.error ? fieldProblem(result.error) : { text: "Keyplane did not answer." });
    setForm(EMPTY_FORM);
    setDone(`Log stream ${answer.logStream.name} created: it delivers from its own creation on.`);
    onCreated(answer.secret ? { streamName: answer.logStream.name, secret: answer.secret, fingerprint: answer.logStream.secretFingerprint } : null);
  }

  const on = (field: string) => (problem?.field === field ? problem.text : undefined);
  const general = problem && !["name", "url", "secret", "settings", "filter"].includes(problem.field ?? "") ? problem.text : null;
  const urlHint =
    form.kind === "webhook"
      ? "https only: the endpoint that receives each batch"
      : form.kind === "splunk"
        ? "https only: the collector's base, e.g. https://splunk.example.com:8088"
        : "optional: the site's intake by default (a proxy's https URL otherwise)";
  return (
    <section aria-labelledby="create-stream-heading">
      <h2 id="create-stream-heading">Create a log stream</h2>
      <form className="form" onSubmit={submit} aria-label="Create a log stream">
        <Field label="Name" value={form.name} onChange={set("name")} problem={on("name")} required placeholder="SIEM" />
        <div className="field">
          <label htmlFor={`${id}-kind`}>Kind</label>
          <select id={`${id}-kind`} value={form.kind} onChange={(e) => set("kind")(e.target.value as Kind)}>
            {KINDS.map((k) => (
              <option key={k.value} value={k.value}>
                {k.label}
              </option>
            ))}
          </select>
        </div>
        <Field label="URL" type="url" value={form.url} onChange={set("url")} problem={on("url")} required={form.kind !== "datadog"} hint={urlHint} />
        {form.kind === "webhook" ? (
          <p className="hint">Keyplane makes the webhook's signing secret (whsec_…) and shows it once, after creation.</p>
        ) : (
          <Field
            label={form.kind === "splunk" ? "HEC token" : "API key"}
            type="password"
            autoComplete="off"
            value={form.secret}
            onChange={set("secret")}
            problem={on("secret")}
            required
            hint="kept encrypted; shown nowhere after this, only its fingerprint"
          />
        )}
        {form.kind === "splunk" && (
          <fieldset className="settings">
            <legend>Splunk settings (optional)</legend>
            <Field label="Index" value={form.index} onChange={set("index")} placeholder="keyplane" />
            <Field label="Source" value={form.source} onChange={set("source")} placeholder="keyplane" />
            <Field label="Sourcetype" value={form.sourcetype} onChange={set("sourcetype")} placeholder="keyplane:audit" />
          </fieldset>
        )}
        {form.kind === "datadog" && (
          <fieldset className="settings">
            <legend>Datadog settings (optional)</legend>
            <div className="field">
              <label htmlFor={`${id}-site`}>Site</label>
              <select id={`${id}-site`} value={form.site} onChange={(e) => set("site")(e.target.value)}>
                <option value="">datadoghq.com (default)</option>
                {DATADOG_SITES.slice(1).map((site) => (
                  <option key={site}>{site}</option>
                ))}
              </select>
            </div>
            <Field label="Service" value={form.service} onChange={set("service")} placeholder="keyplane" />
            <Field label="Tags (ddtags)" value={form.ddtags} onChange={set("ddtags")} placeholder="env:prod,team:security" />
          </fieldset>
        )}
        {on("settings") && (
          <p role="alert" className="error field-problem">
            {on("settings")}
          </p>
        )}
        <fieldset className="settings">
          <legend>Which events</legend>
          <Field
            label="Event types"
            value={form.types}
            onChange={set("types")}
            problem={on("filter")}
            placeholder="auth.failed, alert.fired"
            hint="comma-separated; empty: every type"
          />
          <label>
            <input type="checkbox" checked={form.securityOnly} onChange={(e) => set("securityOnly")(e.target.checked)} /> Security events only (auth.failed,
            access.denied)
          </label>
        </fieldset>
        <button type="submit" disabled={state.fetching}>
          Create log stream
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
