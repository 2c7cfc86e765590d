import { useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql } from "../graphql.ts";

const UsageFields = graphql(`
  fragment UsageFields on WindowUsage @_unmask {
    used
    limit
    windowSeconds
  }
`);

const OverviewQuery = graphql(
  `
  query Overview($withAgents: Boolean!, $withAudit: Boolean!) {
    tenant {
      id
      name
      tier
      status
      createdAt
    }
    tenantUsage {
      requestLimitsEnforced
      requests {
        ...UsageFields
      }
      cost {
        ...UsageFields
      }
      agentCreations {
        ...UsageFields
      }
      agentUpdates {
        ...UsageFields
      }
    }
    agents(first: 100) @include(if: $withAgents) {
      nodes {
        id
        connection
      }
      pageInfo {
        hasNextPage
      }
    }
    auditLog(first: 10, order: NEWEST_FIRST, filter: { types: ["auth.failed", "access.denied"] }) @include(if: $withAudit) {
      nodes {
        sequence
        type
        actor
        occurredAt
        data
      }
    }
  }
`,
  [UsageFields],
);

export function Overview({ viewer }: { viewer: Viewer }) {
  // Only what the principal may read: asking for more would be refused (and recorded as access.denied).
  const [{ data, error, fetching }] = useQuery({
    query: OverviewQuery,
    variables: { withAgents: viewer.permissions.includes("agent:read"), withAudit: viewer.permissions.includes("audit:read") },
  });
  if (error)
    return (
      <p role="alert" className="error">
        {describeError(error)}
      </p>
    );
  if (!data) return <p aria-busy={fetching}>Loading…</p>;
  const agents = data.agents?.nodes ?? [];
  const online = agents.filter((a) => a.connection === "online").length;
  const more = data.agents?.pageInfo.hasNextPage ? "+" : "";
  const security = data.auditLog?.nodes;
  return (
    <>
      <h1>Overview</h1>
      <section className="cards" aria-label="Tenant">
        <article className="card">
          <h2>Tenant</h2>
          <p data-testid="tenant-name">{data.tenant.name}</p>
          <dl>
            <dt>Id</dt>
            <dd>{data.tenant.id}</dd>
            <dt>Tier</dt>
            <dd data-testid="tenant-tier">{data.tenant.tier}</dd>
            <dt>Status</dt>
            <dd>{data.tenant.status}</dd>
          </dl>
        </article>
        <article className="card">
          <h2>Signed in as</h2>
          <p>{viewer.subject}</p>
          <dl>
            <dt>Kind</dt>
            <dd>{viewer.kind}</dd>
            <dt>Roles</dt>
            <dd>{viewer.roles.join(", ")}</dd>
            <dt>Permissions</dt>
            <dd>{viewer.permissions.length}</dd>
          </dl>
        </article>
        {data.agents && (
          <article className="card">
            <h2>Agents</h2>
            <p data-testid="agents-online">
              {online}
              {more} online
            </p>
            <dl>
              <dt>Offline or pending</dt>
              <dd>
                {agents.length - online}
                {more}
              </dd>
            </dl>
          </article>
        )}
      </section>
      <section aria-labelledby="usage-heading">
        <h2 id="usage-heading">What the {data.tenant.tier} tier allows, and what is used</h2>
        <table className="usage">
          <thead>
            <tr>
              <th scope="col">Limit</th>
              <th scope="col">Used</th>
              <th scope="col">Allowed</th>
            </tr>
          </thead>
          <tbody>
            <UsageRow name="API requests this minute" usage={data.tenantUsage.requests} counted={data.tenantUsage.requestLimitsEnforced} />
            <UsageRow name="Query cost this minute" usage={data.tenantUsage.cost} counted={data.tenantUsage.requestLimitsEnforced} />
            <UsageRow name="Agent creations in the last 24 hours" usage={data.tenantUsage.agentCreations} />
            <UsageRow name="Agent updates in the last hour" usage={data.tenantUsage.agentUpdates} />
          </tbody>
        </table>
      </section>
      {security && (
        <section aria-labelledby="security-heading">
          <h2 id="security-heading">Last security events</h2>
          {security.length === 0 ? (
            <p>None.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Event</th>
                  <th scope="col">Actor</th>
                  <th scope="col">When</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {security.map((e) => (
                  <tr key={e.sequence}>
                    <td>{e.sequence}</td>
                    <td>{e.type}</td>
                    <td>{e.actor}</td>
                    <td>
                      <time dateTime={e.occurredAt}>{new Date(e.occurredAt).toLocaleString()}</time>
                    </td>
                    <td>{String((e.data as { reason?: unknown }).reason ?? "")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </>
  );
}

function UsageRow({ name, usage, counted = true }: { name: string; usage: { used: number; limit: number | null }; counted?: boolean }) {
  return (
    <tr data-testid="usage">
      <th scope="row">{name}</th>
      <td>{counted ? usage.used : "not counted (rate limits are off)"}</td>
      <td>
        {usage.limit === null ? (
          "unlimited"
        ) : (
          <>
            {usage.limit} <meter min={0} max={usage.limit} value={Math.min(usage.used, usage.limit)} aria-label={`${name}: ${usage.used} of ${usage.limit}`} />
          </>
        )}
      </td>
    </tr>
  );
}
