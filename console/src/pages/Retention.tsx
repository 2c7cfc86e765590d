import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useId, useState } from "react";
import { useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql, type ResultOf } from "../graphql.ts";
import { LiveHeading } from "../LiveHeading.tsx";
import { useReread, useTenantEvents } from "../liveEvents.ts";
import { fieldProblem } from "./Agents.tsx";

// How long the tenant's audit log is kept (its own choice, within its tier's maximum), where the log
// starts after retention pruned it, and its legal hold: shown to whoever reads the tenant, changed by
// those holding retention:manage (the tenant's admins). Kept current by the tenant's events.

const RetentionFields = graphql(`
  fragment RetentionFields on TenantRetention @_unmask {
    days
    tierMaxDays
    effectiveDays
    legalHold {
      reason
      since
    }
    archived
    firstAvailableSequence
    prunedBefore
  }
`);

const RetentionQuery = graphql(
  `
  query Retention {
    tenant {
      id
      tier
      retention {
        ...RetentionFields
      }
    }
  }
`,
  [RetentionFields],
);

type Retention = ResultOf<typeof RetentionQuery>["tenant"]["retention"];

const SetRetentionPolicy = graphql(
  `
  mutation SetRetentionPolicy($days: Int) {
    setRetentionPolicy(days: $days) {
      id
      retention {
        ...RetentionFields
      }
    }
  }
`,
  [RetentionFields],
);

const SetLegalHold = graphql(
  `
  mutation SetLegalHold($reason: String!) {
    setLegalHold(reason: $reason) {
      id
      retention {
        ...RetentionFields
      }
    }
  }
`,
  [RetentionFields],
);

const ReleaseLegalHold = graphql(
  `
  mutation ReleaseLegalHold {
    releaseLegalHold {
      id
      retention {
        ...RetentionFields
      }
    }
  }
`,
  [RetentionFields],
);

/** Events that change what this page shows (a new tier changes its maximum). */
const RETENTION_EVENTS = ["tenant.retention_set", "tenant.legal_hold_set", "tenant.legal_hold_released", "tenant.tier_changed"];

/** 30 → "30 days"; null → `none`. */
export function daysText(days: number | null | undefined, none: string): string {
  if (days === null || days === undefined) return none;
  return days === 1 ? "1 day" : `${days} days`;
}

const when = (iso: string) => <time dateTime={iso}>{new Date(iso).toLocaleString()}</time>;

export function RetentionPage({ viewer }: { viewer: Viewer }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: RetentionQuery });
  const refresh = useReread(fetching || stale, reexecute);
  const live = useTenantEvents(viewer, RETENTION_EVENTS, () => refresh());
  const mayManage = viewer.permissions.includes("retention:manage");
  const [notice, setNotice] = useState<{ error: boolean; text: string } | null>(null);
  const tenant = data?.tenant;

  return (
    <>
      <LiveHeading title="Retention" state={live.state} refresh={refresh} />
      <p className="hint">
        How long the tenant's audit log is kept. Events older than that are pruned, only ever behind a signed checkpoint, so that what remains still verifies; a
        legal hold stops all pruning until it is released.
      </p>
      <ErrorAlert error={error} />
      <ErrorAlert error={live.error} />
      {!tenant ? (
        <p aria-busy={fetching}>Loading…</p>
      ) : (
        <>
          {tenant.retention.legalHold && (
            <LegalHoldPanel
              hold={tenant.retention.legalHold}
              mayRelease={mayManage}
              onReleased={(error) => {
                setNotice(
                  error ? { error: true, text: error } : { error: false, text: "Legal hold released: retention prunes the log again from its next run." },
                );
                if (!error) refresh();
              }}
            />
          )}
          <RetentionCards tier={tenant.tier} retention={tenant.retention} />
          {notice && (
            <p role={notice.error ? "alert" : "status"} className={notice.error ? "error" : undefined}>
              {notice.text}
            </p>
          )}
          {mayManage && (
            <section aria-labelledby="change-retention-heading">
              <h2 id="change-retention-heading">Change retention</h2>
              <RetentionForm
                tier={tenant.tier}
                retention={tenant.retention}
                onSaved={() => {
                  setNotice(null);
                  refresh();
                }}
              />
              {!tenant.retention.legalHold && (
                <LegalHoldForm
                  onPlaced={() => {
                    setNotice({ error: false, text: "Legal hold placed: nothing of the log is pruned until it is released." });
                    refresh();
                  }}
                />
              )}
            </section>
          )}
        </>
      )}
    </>
  );
}

/** The hold, first on the page while it is in place: why, since when, and (for those who may) its release. */
function LegalHoldPanel({
  hold,
  mayRelease,
  onReleased,
}: {
  hold: NonNullable<Retention["legalHold"]>;
  mayRelease: boolean;
  onReleased(error?: string): void;
}) {
  const [state, release] = useMutation(ReleaseLegalHold);
  return (
    <section className="panel hold" aria-labelledby="legal-hold-heading" data-testid="legal-hold">
      <h2 id="legal-hold-heading">
        <span aria-hidden="true">⚖ </span>Legal hold in place
      </h2>
      <p>Nothing of the tenant's log is pruned while it holds, whatever the retention period says.</p>
      <dl>
        <dt>Reason</dt>
        <dd data-testid="legal-hold-reason" className="wrap">
          {hold.reason}
        </dd>
        <dt>Since</dt>
        <dd data-testid="legal-hold-since">{when(hold.since)}</dd>
      </dl>
      {mayRelease && (
        <button
          type="button"
          className="danger"
          disabled={state.fetching}
          onClick={async () => {
            if (!confirm("Release the legal hold? Retention prunes the tenant's log again from its next run, behind a signed checkpoint.")) return;
            const result = await release({});
            onReleased(result.error ? describeError(result.error) : undefined);
          }}
        >
          Release legal hold
        </button>
      )}
    </section>
  );
}

function RetentionCards({ tier, retention }: { tier: string; retention: Retention }) {
  const r = retention;
  return (
    <section className="cards retention-cards" aria-label="Retention of the audit log">
      <article className="card">
        <h2>Kept for</h2>
        <p className="figure" data-testid="retention-effective">
          {daysText(r.effectiveDays, "unlimited")}
        </p>
        <p className="hint">
          {r.legalHold
            ? "Nothing is pruned while the legal hold is in place."
            : r.effectiveDays === null
              ? "Nothing is ever pruned."
              : "Older events are pruned, behind a signed checkpoint."}
        </p>
        <dl>
          <dt>Tenant's choice</dt>
          <dd data-testid="retention-choice">{daysText(r.days, "as long as the tier allows")}</dd>
          <dt>Most the {tier} tier allows</dt>
          <dd data-testid="retention-tier-max">{daysText(r.tierMaxDays, "unlimited")}</dd>
        </dl>
      </article>
      <article className="card">
        <h2>Where the log starts</h2>
        <p className="figure" data-testid="retention-start">
          Sequence {r.firstAvailableSequence}
        </p>
        <p className="hint" data-testid="retention-pruned">
          {r.prunedBefore ? <>Events before {when(r.prunedBefore)} were pruned.</> : "Nothing was pruned."}
        </p>
        <dl>
          <dt>Pruned ranges archived</dt>
          <dd data-testid="retention-archived">{r.archived ? "yes" : "no"}</dd>
        </dl>
        <p className="hint">{r.archived ? "Each range is written as a verifiable export file before it is pruned." : "Pruned events are not kept anywhere."}</p>
      </article>
      <article className="card">
        <h2>Legal hold</h2>
        <p className="figure" data-testid="retention-hold">
          {r.legalHold ? "In place" : "None"}
        </p>
        <p className="hint">{r.legalHold ? <>Since {when(r.legalHold.since)}.</> : "Retention prunes the log as its period says."}</p>
      </article>
    </section>
  );
}

/** The period: a number of days, or as long as the tier allows; the server's refusal next to the days. */
function RetentionForm({ tier, retention, onSaved }: { tier: string; retention: Retention; onSaved(): void }) {
  const id = useId();
  const [choice, setChoice] = useState<"tier" | "days">(retention.days === null ? "tier" : "days");
  const [days, setDays] = useState(retention.days === null ? "" : String(retention.days));
  const [problem, setProblem] = useState<{ field?: string; text: string } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [state, save] = useMutation(SetRetentionPolicy);
  const tierWords = retention.tierMaxDays === null ? "without limit" : `for at most ${daysText(retention.tierMaxDays, "")}`;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setDone(null);
    const result = await save({ days: choice === "tier" ? null : Number(days) });
    if (result.error || !result.data) return setProblem(result.error ? fieldProblem(result.error) : { text: "Keyplane did not answer." });
    const saved = result.data.setRetentionPolicy.retention;
    setDone(`Saved: the audit log is kept for ${daysText(saved.effectiveDays, "an unlimited time")}.`);
    onSaved();
  }

  const daysProblem = problem?.field === "days" ? problem.text : null;
  const general = problem && problem.field !== "days" ? problem.text : null;
  const describedBy = [`${id}-days-hint`, daysProblem ? `${id}-days-problem` : ""].filter(Boolean).join(" ");

  return (
    <form className="form" onSubmit={submit} aria-label="Set the retention period">
      <fieldset className="settings">
        <legend>Keep the audit log</legend>
        <label>
          <input type="radio" name={`${id}-choice`} value="tier" checked={choice === "tier"} onChange={() => setChoice("tier")} />{" "}
          {`As long as the tier allows (${daysText(retention.tierMaxDays, "unlimited")})`}
        </label>
        <label>
          <input type="radio" name={`${id}-choice`} value="days" checked={choice === "days"} onChange={() => setChoice("days")} /> For a number of days
        </label>
        <div className="field">
          <label htmlFor={`${id}-days`}>Number of days</label>
          <input
            id={`${id}-days`}
            type="number"
            min="1"
            step="1"
            inputMode="numeric"
            className="days"
            value={days}
            onChange={(e) => {
              setDays(e.target.value);
              setChoice("days");
            }}
            required={choice === "days"}
            aria-invalid={daysProblem ? true : undefined}
            aria-describedby={describedBy}
          />
          <span id={`${id}-days-hint`} className="hint">
            1 or more; the {tier} tier keeps the log {tierWords}
          </span>
          {daysProblem && (
            <p id={`${id}-days-problem`} role="alert" className="error field-problem">
              {daysProblem}
            </p>
          )}
        </div>
      </fieldset>
      <button type="submit" disabled={state.fetching}>
        Save retention period
      </button>
      {general && (
        <p role="alert" className="error">
          {general}
        </p>
      )}
      {done && <p role="status">{done}</p>}
    </form>
  );
}

/** A hold needs its reason: recorded in the tenant's log and shown to whoever reads the tenant. */
function LegalHoldForm({ onPlaced }: { onPlaced(): void }) {
  const id = useId();
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState<{ field?: string; text: string } | null>(null);
  const [state, place] = useMutation(SetLegalHold);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    const result = await place({ reason: reason.trim() });
    if (result.error) return setProblem(fieldProblem(result.error));
    setReason("");
    onPlaced();
  }

  const reasonProblem = problem?.field === "reason" ? problem.text : null;
  const general = problem && problem.field !== "reason" ? problem.text : null;
  return (
    <form className="form hold-form" onSubmit={submit} aria-label="Place a legal hold">
      <div className="field">
        <label htmlFor={`${id}-reason`}>Reason for a legal hold</label>
        <input
          id={`${id}-reason`}
          value={reason}
          onChange={(e) => setReason(e.target.value)}
          required
          maxLength={500}
          placeholder="Litigation hold, case 2024-117"
          aria-invalid={reasonProblem ? true : undefined}
          aria-describedby={[`${id}-reason-hint`, reasonProblem ? `${id}-reason-problem` : ""].filter(Boolean).join(" ")}
        />
        <span id={`${id}-reason-hint`} className="hint">
          at most 500 characters; recorded in the tenant's log and shown to everyone who reads the tenant. Nothing is pruned until the hold is released.
        </span>
        {reasonProblem && (
          <p id={`${id}-reason-problem`} role="alert" className="error field-problem">
            {reasonProblem}
          </p>
        )}
      </div>
      <button type="submit" disabled={state.fetching}>
        Place legal hold
      </button>
      {general && (
        <p role="alert" className="error">
          {general}
        </p>
      )}
    </form>
  );
}
