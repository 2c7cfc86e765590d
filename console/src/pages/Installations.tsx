import { ErrorAlert } from "../ErrorAlert.tsx";
import { useState } from "react";
import { useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { graphql } from "../graphql.ts";

// The tenant's installations of GitHub, Slack and Jira, with their credentials' refresh health; a new
// install goes through the provider's consent in this browser; suspend, resume, revoke.

const InstallationsQuery = graphql(`
  query Installations($platform: Platform, $status: InstallationStatus) {
    installations(first: 100, platform: $platform, status: $status) {
      nodes {
        id
        platform
        app
        status
        externalId
        account {
          login
          type
        }
        credentialsExpiresAt
        refresh {
          failures
          lastError
          lastRefreshedAt
          nextAttemptAt
        }
      }
      pageInfo {
        hasNextPage
      }
    }
  }
`);

const StartInstallation = graphql(`
  mutation StartInstallation($platform: Platform!) {
    startInstallation(platform: $platform) {
      authorizationUrl
    }
  }
`);

const Suspend = graphql(`
  mutation SuspendInstallation($id: ID!) {
    suspendInstallation(id: $id) {
      id
      status
    }
  }
`);

const Resume = graphql(`
  mutation ResumeInstallation($id: ID!) {
    resumeInstallation(id: $id) {
      id
      status
    }
  }
`);

const Revoke = graphql(`
  mutation RevokeInstallation($id: ID!) {
    revokeInstallation(id: $id) {
      id
      status
    }
  }
`);

type Platform = "github" | "slack" | "jira";
type Status = "active" | "needs_reauth" | "suspended" | "revoked";
const PLATFORMS: Platform[] = ["github", "slack", "jira"];
const STATUSES: Status[] = ["active", "needs_reauth", "suspended", "revoked"];

/** What the install callback reported when it sent the browser back here (then gone from the address bar). */
function returnedFromInstall(): string | null {
  const query = new URLSearchParams(location.search);
  const platform = query.get("platform");
  const outcome = query.get("outcome");
  if (!platform || !outcome) return null;
  history.replaceState(null, "", location.pathname);
  return `${platform}: ${outcome.replace(/_/g, " ")}`;
}

export function Installations({ viewer }: { viewer: Viewer }) {
  const [returned] = useState(returnedFromInstall);
  const [platform, setPlatform] = useState<Platform | "">("");
  const [status, setStatus] = useState<Status | "">("");
  const [{ data, error }, reload] = useQuery({ query: InstallationsQuery, variables: { platform: platform || null, status: status || null } });
  const [started, start] = useMutation(StartInstallation);
  const [suspended, suspend] = useMutation(Suspend);
  const [resumed, resume] = useMutation(Resume);
  const [revoked, revoke] = useMutation(Revoke);
  const mayInstall = viewer.permissions.includes("installation:create");
  const mayManage = viewer.permissions.includes("installation:manage");
  const failure = started.error ?? suspended.error ?? resumed.error ?? revoked.error;

  async function install(target: Platform) {
    const result = await start({ platform: target });
    // The provider's consent, then back to Keyplane's callback.
    if (result.data) location.assign(result.data.startInstallation.authorizationUrl);
  }
  const after = () => reload({ requestPolicy: "network-only" });

  return (
    <>
      <h1>Installations</h1>
      {returned && (
        <p role="status" className="ok" data-testid="install-outcome">
          Installed — {returned}
        </p>
      )}
      {mayInstall && (
        <p className="actions">
          {PLATFORMS.map((p) => (
            <button key={p} type="button" disabled={started.fetching} onClick={() => void install(p)}>
              Install {p === "github" ? "GitHub" : p === "slack" ? "Slack" : "Jira"}
            </button>
          ))}
        </p>
      )}
      <ErrorAlert error={error ?? failure} />
      <form className="filters" aria-label="Filter installations" onSubmit={(e) => e.preventDefault()}>
        <label>
          Platform{" "}
          <select value={platform} onChange={(e) => setPlatform(e.target.value as Platform | "")}>
            <option value="">all</option>
            {PLATFORMS.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </label>
        <label>
          Status{" "}
          <select value={status} onChange={(e) => setStatus(e.target.value as Status | "")}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      {data && data.installations.nodes.length === 0 ? (
        <p>No installation{platform || status ? " matches" : " yet"}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Platform</th>
              <th scope="col">Account</th>
              <th scope="col">Status</th>
              <th scope="col">Credentials expire</th>
              <th scope="col">Refresh</th>
              {mayManage && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody data-testid="installations">
            {data?.installations.nodes.map((i) => (
              <tr key={i.id}>
                <td>
                  {i.platform}
                  {i.app ? ` (${i.app})` : ""}
                </td>
                <td>
                  {i.account.login} <span className="hint">{i.account.type}</span>
                </td>
                <td>{i.status}</td>
                <td>{i.credentialsExpiresAt ? new Date(i.credentialsExpiresAt).toLocaleString() : "never"}</td>
                <td>
                  {i.refresh.failures === 0
                    ? `ok${i.refresh.lastRefreshedAt ? `, last ${new Date(i.refresh.lastRefreshedAt).toLocaleString()}` : ""}`
                    : `${i.refresh.failures} failed (${i.refresh.lastError ?? "error"})${i.refresh.nextAttemptAt ? `, next try ${new Date(i.refresh.nextAttemptAt).toLocaleTimeString()}` : ""}`}
                </td>
                {mayManage && (
                  <td className="actions">
                    {i.status === "active" && (
                      <button type="button" onClick={() => void suspend({ id: i.id }).then(after)}>
                        Suspend
                      </button>
                    )}
                    {i.status === "suspended" && (
                      <button type="button" onClick={() => void resume({ id: i.id }).then(after)}>
                        Resume
                      </button>
                    )}
                    {i.status !== "revoked" && (
                      <button
                        type="button"
                        onClick={() => {
                          if (confirm(`Revoke the ${i.platform} installation of ${i.account.login}? Its credentials are deleted.`))
                            void revoke({ id: i.id }).then(after);
                        }}
                      >
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
    </>
  );
}
