import { Fragment } from "react";
import { useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { ErrorAlert } from "../ErrorAlert.tsx";
import { graphql } from "../graphql.ts";
import { LiveHeading } from "../LiveHeading.tsx";
import { type LiveEvent, useReread, useTenantEvents } from "../liveEvents.ts";
import { navigate } from "../router.ts";

// One agent: what it is, what its machine reported at enrollment (host facts), its config, and its
// own events (created, enrolled, online, offline, …), kept current from tenantEvents.

const AgentQuery = graphql(`
  query AgentDetail($id: ID!) {
    agent(id: $id) {
      id
      name
      type
      tags
      status
      connection
      ephemeral
      version
      config
      host
      lastSeenAt
      enrolledAt
      createdBy
      createdAt
      updatedAt
      history(first: 100) {
        sequence
        type
        actor
        occurredAt
        data
      }
    }
  }
`);

const AGENT_EVENTS = ["agent.updated", "agent.published", "agent.deleted", "agent.enrolled", "agent.online", "agent.offline"];

const when = (at: string | null | undefined) => (at ? <time dateTime={at}>{new Date(at).toLocaleString()}</time> : "never");

export function AgentDetail({ viewer, id }: { viewer: Viewer; id: string }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: AgentQuery, variables: { id } });
  const refresh = useReread(fetching || stale, reexecute);
  const live = useTenantEvents(viewer, AGENT_EVENTS, (event: LiveEvent | null) => {
    if (!event || event.streamId === id) refresh();
  });
  const agent = data?.agent;
  const host = agent?.host && typeof agent.host === "object" && !Array.isArray(agent.host) ? Object.entries(agent.host as Record<string, unknown>) : [];
  return (
    <>
      <p>
        <a
          href="/console/agents"
          onClick={(event) => {
            event.preventDefault();
            navigate("/agents");
          }}
        >
          ← All agents
        </a>
      </p>
      <LiveHeading title={agent ? `Agent ${agent.name}` : "Agent"} state={live.state} refresh={refresh} />
      <ErrorAlert error={error} />
      <ErrorAlert error={live.error} />
      {!agent ? (
        !error && <p aria-busy={fetching}>Loading…</p>
      ) : (
        <>
          <section className="cards" aria-label="The agent">
            <article className="card">
              <h2>Agent</h2>
              <dl data-testid="agent-facts">
                <dt>Id</dt>
                <dd>
                  <code>{agent.id}</code>
                </dd>
                <dt>Type</dt>
                <dd>{agent.type}</dd>
                <dt>Tags</dt>
                <dd>{agent.tags.join(", ") || "none"}</dd>
                <dt>Status</dt>
                <dd>{agent.status}</dd>
                <dt>Connection</dt>
                <dd>
                  <span className={`connection connection-${agent.connection}`} data-testid="agent-connection">
                    {agent.connection}
                  </span>
                </dd>
                <dt>Last seen</dt>
                <dd>{when(agent.lastSeenAt)}</dd>
                <dt>Enrolled</dt>
                <dd>{when(agent.enrolledAt)}</dd>
                <dt>Created</dt>
                <dd>
                  {when(agent.createdAt)} by {agent.createdBy}
                </dd>
                <dt>Version</dt>
                <dd>
                  {agent.version}
                  {agent.ephemeral && " (ephemeral: removed when it goes offline)"}
                </dd>
              </dl>
            </article>
            <article className="card">
              <h2>Host</h2>
              {host.length === 0 ? (
                <p>Not enrolled yet: a machine reports its facts when it enrolls.</p>
              ) : (
                <dl data-testid="agent-host">
                  {host.map(([key, value]) => (
                    <Fragment key={key}>
                      <dt>{key}</dt>
                      <dd>{typeof value === "string" ? value : JSON.stringify(value)}</dd>
                    </Fragment>
                  ))}
                </dl>
              )}
            </article>
            <article className="card">
              <h2>Config</h2>
              <pre className="card-json">{JSON.stringify(agent.config, null, 2)}</pre>
            </article>
          </section>
          <h2>History</h2>
          <table className="log" data-testid="agent-history">
            <caption className="visually-hidden">The agent's events, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Sequence</th>
                <th scope="col">Event</th>
                <th scope="col">By</th>
                <th scope="col">When</th>
                <th scope="col">Data</th>
              </tr>
            </thead>
            <tbody>
              {agent.history.map((event) => (
                <tr key={event.sequence}>
                  <td>{event.sequence}</td>
                  <td>{event.type}</td>
                  <td>{event.actor}</td>
                  <td>{when(event.occurredAt)}</td>
                  <td>
                    <code className="json-inline">{JSON.stringify(event.data)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
