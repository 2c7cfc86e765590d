import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useState } from "react";
import { useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { graphql } from "../graphql.ts";

// Platform operators: every tenant, a new one, another tier, a suspension (with why) and its end.

const TenantsQuery = graphql(`
  query Tenants {
    tenants {
      id
      name
      tier
      status
      suspensionReason
      createdAt
    }
  }
`);

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
      <table>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Name</th>
            <th scope="col">Tier</th>
            <th scope="col">Status</th>
            <th scope="col">Created</th>
            {mayManage && <th scope="col">Suspension</th>}
          </tr>
        </thead>
        <tbody data-testid="tenants">
          {data?.tenants.map((t) => (
            <tr key={t.id} data-tenant={t.id}>
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
