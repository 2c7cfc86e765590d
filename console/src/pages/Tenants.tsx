import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useId, useState } from "react";
import { useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql, type ResultOf } from "../graphql.ts";
import { fieldProblem } from "./Agents.tsx";
import { daysText } from "./Retention.tsx";

// Platform operators: every tenant, a new one, another tier, a suspension (with why) and its end;
// how long each tenant's audit log is kept and its legal hold (placed with why, released once confirmed).
// The list asks only for the retention fields that cost no query of their own (where each log starts
// would be one more query per tenant).

const TenantListRetention = graphql(`
  fragment TenantListRetention on TenantRetention @_unmask {
    days
    tierMaxDays
    effectiveDays
    legalHold {
      reason
      since
    }
  }
`);

const TenantsQuery = graphql(
  `
  query Tenants {
    tenants {
      id
      name
      tier
      status
      suspensionReason
      createdAt
      retention {
        ...TenantListRetention
      }
    }
  }
`,
  [TenantListRetention],
);

const CreateTenant = graphql(`
  mutation CreateTenant($input: CreateTenantInput!) {
    createTenant(input: $input) {
      id
      name
      tier
      status
      createdAt
    }
  }
`);

const ChangeTier = graphql(`
  mutation ChangeTenantTier($id: ID!, $tier: Tier!) {
    changeTenantTier(id: $id, tier: $tier) {
      id
      tier
    }
  }
`);

const SuspendTenant = graphql(`
  mutation SuspendTenant($id: ID!, $reason: String!) {
    suspendTenant(id: $id, reason: $reason) {
      id
      status
      suspensionReason
    }
  }
`);

const ResumeTenant = graphql(`
  mutation ResumeTenant($id: ID!) {
    resumeTenant(id: $id) {
      id
      status
      suspensionReason
    }
  }
`);

const SetTenantLegalHold = graphql(
  `
  mutation SetTenantLegalHold($tenantId: ID!, $reason: String!) {
    setLegalHold(tenantId: $tenantId, reason: $reason) {
      id
      retention {
        ...TenantListRetention
      }
    }
  }
`,
  [TenantListRetention],
);

const ReleaseTenantLegalHold = graphql(
  `
  mutation ReleaseTenantLegalHold($tenantId: ID!) {
    releaseLegalHold(tenantId: $tenantId) {
      id
      retention {
        ...TenantListRetention
      }
    }
  }
`,
  [TenantListRetention],
);

const SetTenantRetention = graphql(
  `
  mutation SetTenantRetention($tenantId: ID!, $days: Int) {
    setRetentionPolicy(tenantId: $tenantId, days: $days) {
      id
      retention {
        ...TenantListRetention
      }
    }
  }
`,
  [TenantListRetention],
);

type ListedTenant = ResultOf<typeof TenantsQuery>["tenants"][number];
type Notice = { error: boolean; text: string };

type TierName = "free" | "pro" | "enterprise";
const TIERS: TierName[] = ["free", "pro", "enterprise"];

export function Tenants({ viewer }: { viewer: Viewer }) {
  const [{ data, error }, reload] = useQuery({ query: TenantsQuery });
  const [created, create] = useMutation(CreateTenant);
  const [changed, changeTier] = useMutation(ChangeTier);
  const [suspended, suspend] = useMutation(SuspendTenant);
  const [resumed, resume] = useMutation(ResumeTenant);
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [tier, setTier] = useState<TierName>("free");
  const mayCreate = viewer.permissions.includes("tenant:create");
  const mayManage = viewer.permissions.includes("tenant:manage");
  const mayRetain = viewer.permissions.includes("retention:manage");
  const [notice, setNotice] = useState<Notice | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const result = await create({ input: { id: id.trim(), name: name.trim(), tier } });
    if (!result.error) {
      setId("");
      setName("");
      reload({ requestPolicy: "network-only" });
    }
  }

  return (
    <>
      <h1>Tenants</h1>
      <ErrorAlert error={error} />
      {mayCreate && (
        <form className="filters" onSubmit={submit} aria-label="Create a tenant">
          <label>
            Id <input value={id} onChange={(e) => setId(e.target.value)} pattern={"[a-z0-9][a-z0-9\\-]*"} required placeholder="acme" />
          </label>
          <label>
            Name <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="Acme Inc." />
          </label>
          <label>
            Tier{" "}
            <select value={tier} onChange={(e) => setTier(e.target.value as TierName)}>
              {TIERS.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={created.fetching}>
            Create tenant
          </button>
        </form>
      )}
      <ErrorAlert error={created.error} />
      <ErrorAlert error={changed.error} />
      <ErrorAlert error={suspended.error ?? resumed.error} />
      {notice && (
        <p role={notice.error ? "alert" : "status"} className={notice.error ? "error" : undefined} data-testid="tenants-notice">
          {notice.text}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Name</th>
            <th scope="col">Tier</th>
            <th scope="col">Status</th>
            <th scope="col">Created</th>
            <th scope="col">Retention</th>
            <th scope="col">Legal hold</th>
            {mayManage && <th scope="col">Suspension</th>}
          </tr>
        </thead>
        <tbody data-testid="tenants">
          {data?.tenants.map((t) => (
            <tr key={t.id} data-tenant={t.id} className={t.retention.legalHold ? "held" : undefined}>
              <td>{t.id}</td>
              <td>{t.name}</td>
              <td>
                {mayManage ? (
                  <select
                    aria-label={`Tier of ${t.id}`}
                    value={t.tier}
                    disabled={changed.fetching}
                    onChange={(e) => void changeTier({ id: t.id, tier: e.target.value as TierName })}
                  >
                    {TIERS.map((tier) => (
                      <option key={tier}>{tier}</option>
                    ))}
                  </select>
                ) : (
                  t.tier
                )}
              </td>
              <td data-testid={`status-${t.id}`}>
                {t.status}
                {t.suspensionReason && <span className="hint"> ({t.suspensionReason})</span>}
              </td>
              <td>
                <time dateTime={t.createdAt}>{new Date(t.createdAt).toLocaleDateString()}</time>
              </td>
              <td>
                <RetentionCell tenant={t} mayChange={mayRetain} onNotice={setNotice} />
              </td>
              <td>
                <LegalHoldCell tenant={t} mayChange={mayRetain} onNotice={setNotice} />
              </td>
              {mayManage && (
                <td>
                  {t.status === "suspended" ? (
                    <button type="button" aria-label={`Resume ${t.id}`} disabled={resumed.fetching} onClick={() => void resume({ id: t.id })}>
                      Resume
                    </button>
                  ) : (
                    <SuspendForm tenantId={t.id} busy={suspended.fetching} suspend={(reason) => suspend({ id: t.id, reason })} />
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Suspend, then the reason (it is recorded and shown here), then confirm: a suspension is never one stray click. */
function SuspendForm(props: { tenantId: string; busy: boolean; suspend: (reason: string) => Promise<{ error?: unknown }> }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  if (!asking) {
    return (
      <button type="button" aria-label={`Suspend ${props.tenantId}`} onClick={() => setAsking(true)}>
        Suspend
      </button>
    );
  }
  async function submit(event: FormEvent) {
    event.preventDefault();
    const result = await props.suspend(reason.trim());
    if (!result.error) {
      setAsking(false);
      setReason("");
    }
  }
  return (
    <form className="row-form" onSubmit={submit} aria-label={`Suspend ${props.tenantId}`}>
      <label>
        Reason <input value={reason} onChange={(e) => setReason(e.target.value)} required maxLength={500} placeholder="unpaid invoice" />
      </label>
      <button type="submit" disabled={props.busy}>
        Confirm suspension
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </form>
  );
}

/** The period in words, whose choice it is, and (for those who may) another one, in days or the tier's. */
function RetentionCell({ tenant: t, mayChange, onNotice }: { tenant: ListedTenant; mayChange: boolean; onNotice(notice: Notice | null): void }) {
  const r = t.retention;
  const [asking, setAsking] = useState(false);
  return (
    <div className="retention-cell">
      <span data-testid={`retention-${t.id}`}>{daysText(r.effectiveDays, "unlimited")}</span>{" "}
      <span className="hint" data-testid={`retention-source-${t.id}`}>
        {r.days === null ? `(the ${t.tier} tier's)` : `(chosen; the ${t.tier} tier allows ${daysText(r.tierMaxDays, "any period")})`}
      </span>
      {mayChange &&
        (asking ? (
          <RetentionForm
            tenant={t}
            onDone={(saved) => {
              setAsking(false);
              if (saved !== undefined)
                onNotice({ error: false, text: `Retention of ${t.id}: its audit log is kept for ${daysText(saved, "an unlimited time")}.` });
            }}
          />
        ) : (
          <button
            type="button"
            className="link"
            aria-label={`Change retention of ${t.id}`}
            onClick={() => {
              onNotice(null);
              setAsking(true);
            }}
          >
            Change
          </button>
        ))}
    </div>
  );
}

/** A number of days, or empty for as long as the tier allows; the server's refusal next to the field. */
function RetentionForm({ tenant: t, onDone }: { tenant: ListedTenant; onDone(saved?: number | null): void }) {
  const id = useId();
  const [days, setDays] = useState(t.retention.days === null ? "" : String(t.retention.days));
  const [problem, setProblem] = useState<string | null>(null);
  const [state, save] = useMutation(SetTenantRetention);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    const result = await save({ tenantId: t.id, days: days.trim() === "" ? null : Number(days) });
    if (result.error || !result.data) return setProblem(result.error ? fieldProblem(result.error).text : "Keyplane did not answer.");
    onDone(result.data.setRetentionPolicy.retention.effectiveDays);
  }

  return (
    <form className="cell-form" onSubmit={submit} aria-label={`Retention of ${t.id}`}>
      <label htmlFor={`${id}-days`}>Days</label>
      <input
        id={`${id}-days`}
        type="number"
        min="1"
        step="1"
        inputMode="numeric"
        className="days"
        value={days}
        onChange={(e) => setDays(e.target.value)}
        aria-invalid={problem ? true : undefined}
        aria-describedby={[`${id}-hint`, problem ? `${id}-problem` : ""].filter(Boolean).join(" ")}
      />
      <span id={`${id}-hint`} className="hint">
        empty: as long as the {t.tier} tier allows ({daysText(t.retention.tierMaxDays, "unlimited")})
      </span>
      {problem && (
        <p id={`${id}-problem`} role="alert" className="error">
          {problem}
        </p>
      )}
      <span className="cell-form-buttons">
        <button type="submit" disabled={state.fetching}>
          Save retention
        </button>
        <button type="button" onClick={() => onDone()}>
          Cancel
        </button>
      </span>
    </form>
  );
}

/** The hold, marked, with why and since when; else none. Place asks the reason first; Release asks to confirm. */
function LegalHoldCell({ tenant: t, mayChange, onNotice }: { tenant: ListedTenant; mayChange: boolean; onNotice(notice: Notice | null): void }) {
  const hold = t.retention.legalHold;
  const [asking, setAsking] = useState(false);
  const [released, release] = useMutation(ReleaseTenantLegalHold);
  if (hold) {
    return (
      <div className="hold-cell" data-testid={`legal-hold-${t.id}`}>
        <strong className="badge hold-badge">
          <span aria-hidden="true">⚖ </span>On hold
        </strong>{" "}
        <span className="wrap" data-testid={`legal-hold-reason-${t.id}`}>
          {hold.reason}
        </span>
        <span className="hint">
          {" "}
          since <time dateTime={hold.since}>{new Date(hold.since).toLocaleString()}</time>
        </span>
        {mayChange && (
          <button
            type="button"
            className="danger"
            aria-label={`Release legal hold on ${t.id}`}
            disabled={released.fetching}
            onClick={async () => {
              onNotice(null);
              if (!confirm(`Release the legal hold on ${t.id}? Retention prunes its audit log again from its next run, behind a signed checkpoint.`)) return;
              const result = await release({ tenantId: t.id });
              onNotice(
                result.error
                  ? { error: true, text: describeError(result.error) }
                  : { error: false, text: `Legal hold on ${t.id} released: retention prunes its log again from its next run.` },
              );
            }}
          >
            Release
          </button>
        )}
      </div>
    );
  }
  return (
    <div className="hold-cell">
      <span data-testid={`legal-hold-${t.id}`}>none</span>{" "}
      {mayChange &&
        (asking ? (
          <LegalHoldForm
            tenantId={t.id}
            onDone={(placed) => {
              setAsking(false);
              if (placed) onNotice({ error: false, text: `Legal hold placed on ${t.id}: nothing of its log is pruned until it is released.` });
            }}
          />
        ) : (
          <button
            type="button"
            aria-label={`Place legal hold on ${t.id}`}
            onClick={() => {
              onNotice(null);
              setAsking(true);
            }}
          >
            Place legal hold
          </button>
        ))}
    </div>
  );
}

/** A hold needs its reason: recorded in the tenant's log and shown to whoever reads the tenant. */
function LegalHoldForm({ tenantId, onDone }: { tenantId: string; onDone(placed: boolean): void }) {
  const id = useId();
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [state, place] = useMutation(SetTenantLegalHold);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    const result = await place({ tenantId, reason: reason.trim() });
    if (result.error) return setProblem(describeError(result.error));
    onDone(true);
  }

  return (
    <form className="cell-form" onSubmit={submit} aria-label={`Legal hold on ${tenantId}`}>
      <label htmlFor={`${id}-reason`}>Reason</label>
      <input
        id={`${id}-reason`}
        value={reason}
        onChange={(e) => setReason(e.target.value)}
        required
        maxLength={500}
        placeholder="Litigation hold, case 2024-117"
        aria-invalid={problem ? true : undefined}
        aria-describedby={[`${id}-hint`, problem ? `${id}-problem` : ""].filter(Boolean).join(" ")}
      />
      <span id={`${id}-hint`} className="hint">
        at most 500 characters, recorded in the tenant's log and shown to its members; nothing is pruned until the hold is released
      </span>
      {problem && (
        <p id={`${id}-problem`} role="alert" className="error">
          {problem}
        </p>
      )}
      <span className="cell-form-buttons">
        <button type="submit" disabled={state.fetching}>
          Place legal hold
        </button>
        <button type="button" onClick={() => onDone(false)}>
          Cancel
        </button>
      </span>
    </form>
  );
}
