import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useState } from "react";
import { useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql } from "../graphql.ts";

// GitHub token policies (who may get which app's tokens, for which repositories, with at most which
// permissions) and the tokens handed out, by fingerprint: Keyplane never keeps a token.

const PoliciesQuery = graphql(`
  query TokenPolicies {
    tokenPolicies {
      name
      app
      repositories
      permissions
      roles
      subjects
      agentTags
    }
  }
`);

const IssuedQuery = graphql(`
  query IssuedGitHubTokens($filter: IssuedTokensFilter) {
    issuedTokens(first: 50, filter: $filter) {
      nodes {
        id
        app
        policy
        requester
        fingerprint
        repositories
        permissions
        issuedAt
        expiresAt
        revokedAt
        revokeReason
      }
    }
  }
`);

const SetPolicy = graphql(`
  mutation SetTokenPolicy($input: TokenPolicyInput!) {
    setTokenPolicy(input: $input) {
      name
    }
  }
`);

const DeletePolicy = graphql(`
  mutation DeleteTokenPolicy($name: String!) {
    deleteTokenPolicy(name: $name)
  }
`);

const RevokeToken = graphql(`
  mutation RevokeGitHubToken($id: ID!) {
    revokeGitHubToken(id: $id) {
      id
      revokedAt
    }
  }
`);

const list = (text: string) =>
  text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

export function GitHubTokens({ viewer }: { viewer: Viewer }) {
  const mayReadPolicies = viewer.permissions.includes("token-policy:read");
  const mayManage = viewer.permissions.includes("token-policy:manage");
  const mayReadTokens = viewer.permissions.includes("github-token:read");
  return (
    <>
      <h1>GitHub tokens</h1>
      <p className="hint">
        A token policy says which principals (by role, subject or agent tag) may obtain installation tokens of a GitHub App, for which repositories (
        <code>owner/name</code>, <code>owner/prefix-*</code> or <code>owner/*</code>) and with at most which permissions (for example{" "}
        <code>{'{"contents": "read", "pull_requests": "write"}'}</code>). A request asks for what it needs and gets no more than its policy allows.
      </p>
      {mayReadPolicies && <Policies mayManage={mayManage} />}
      {mayReadTokens && <Issued mayRevoke={viewer.permissions.includes("github-token:revoke")} />}
    </>
  );
}

function Policies({ mayManage }: { mayManage: boolean }) {
  const [{ data, error }, reload] = useQuery({ query: PoliciesQuery });
  const [saved, save] = useMutation(SetPolicy);
  const [deleted, remove] = useMutation(DeletePolicy);
  const [form, setForm] = useState({ name: "", app: "", repositories: "", permissions: '{"contents": "read"}', roles: "", subjects: "", agentTags: "" });
  const [jsonError, setJsonError] = useState<string | null>(null);
  const field = (key: keyof typeof form) => ({ value: form[key], onChange: (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value }) });

  async function submit(event: FormEvent) {
    event.preventDefault();
    let permissions: unknown;
    try {
      permissions = JSON.parse(form.permissions);
      setJsonError(null);
    } catch (caught) {
      setJsonError(`Permissions are not JSON: ${(caught as Error).message}`);
      return;
    }
    const result = await save({
      input: {
        name: form.name.trim(),
        app: form.app.trim(),
        repositories: list(form.repositories),
        permissions,
        roles: list(form.roles),
        subjects: list(form.subjects),
        agentTags: list(form.agentTags),
      },
    });
    if (!result.error) reload({ requestPolicy: "network-only" });
  }

  return (
    <section aria-labelledby="policies-heading">
      <h2 id="policies-heading">Token policies</h2>
      <ErrorAlert error={error ?? deleted.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">App</th>
            <th scope="col">Repositories</th>
            <th scope="col">Permissions</th>
            <th scope="col">Who</th>
            {mayManage && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody data-testid="token-policies">
          {data?.tokenPolicies.map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td>{p.app}</td>
              <td>{p.repositories.join(", ")}</td>
              <td>
                <code>{JSON.stringify(p.permissions)}</code>
              </td>
              <td>{[...p.roles.map((r) => `role ${r}`), ...p.subjects, ...p.agentTags.map((t) => `tag ${t}`)].join(", ")}</td>
              {mayManage && (
                <td>
                  <button
                    type="button"
                    onClick={() => {
                      if (confirm(`Delete the token policy ${p.name}?`)) void remove({ name: p.name }).then(() => reload({ requestPolicy: "network-only" }));
                    }}
                  >
                    Delete
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {mayManage && (
        <form className="filters" onSubmit={submit} aria-label="Set a token policy">
          <label>
            Name <input {...field("name")} required placeholder="ci-read" />
          </label>
          <label>
            GitHub App <input {...field("app")} required placeholder="rex" />
          </label>
          <label>
            Repositories <input {...field("repositories")} required placeholder="acme/api, acme/web-*" />
          </label>
          <label>
            Permissions (JSON) <input {...field("permissions")} required aria-invalid={jsonError !== null} />
          </label>
          <label>
            Roles <input {...field("roles")} placeholder="service" />
          </label>
          <label>
            Subjects <input {...field("subjects")} placeholder="ci-runner" />
          </label>
          <label>
            Agent tags <input {...field("agentTags")} placeholder="prod" />
          </label>
          <button type="submit" disabled={saved.fetching}>
            Save policy
          </button>
        </form>
      )}
      {(jsonError ?? saved.error) && (
        <p role="alert" className="error">
          {jsonError ?? describeError(saved.error!)}
        </p>
      )}
    </section>
  );
}

function Issued({ mayRevoke }: { mayRevoke: boolean }) {
  const [status, setStatus] = useState<"active" | "expired" | "revoked" | "">("");
  const [{ data, error }, reload] = useQuery({ query: IssuedQuery, variables: { filter: status ? { status } : null } });
  const [revoked, revoke] = useMutation(RevokeToken);
  return (
    <section aria-labelledby="issued-heading">
      <h2 id="issued-heading">Tokens handed out</h2>
      <form className="filters" aria-label="Filter tokens" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status{" "}
          <select value={status} onChange={(e) => setStatus(e.target.value as typeof status)}>
            <option value="">all</option>
            <option>active</option>
            <option>expired</option>
            <option>revoked</option>
          </select>
        </label>
      </form>
      <ErrorAlert error={error ?? revoked.error} />
      {data && data.issuedTokens.nodes.length === 0 ? (
        <p>None.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Fingerprint</th>
              <th scope="col">Requester</th>
              <th scope="col">Policy</th>
              <th scope="col">Repositories</th>
              <th scope="col">Issued</th>
              <th scope="col">Expires</th>
              <th scope="col">Revoked</th>
              {mayRevoke && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody data-testid="issued-tokens">
            {data?.issuedTokens.nodes.map((t) => (
              <tr key={t.id}>
                <td>
                  <code>{t.fingerprint}</code>
                </td>
                <td>{t.requester}</td>
                <td>
                  {t.app}/{t.policy}
                </td>
                <td>{t.repositories?.join(", ") ?? "all of the installation"}</td>
                <td>{new Date(t.issuedAt).toLocaleString()}</td>
                <td>{new Date(t.expiresAt).toLocaleString()}</td>
                <td>{t.revokedAt ? `${new Date(t.revokedAt).toLocaleString()} (${t.revokeReason ?? ""})` : ""}</td>
                {mayRevoke && (
                  <td>
                    {!t.revokedAt && new Date(t.expiresAt) > new Date() && (
                      <button type="button" onClick={() => void revoke({ id: t.id }).then(() => reload({ requestPolicy: "network-only" }))}>
                        Revoke
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
