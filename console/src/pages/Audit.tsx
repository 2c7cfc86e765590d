import type { JSONWebKeySet } from "jose";
import { type FormEvent, memo, useCallback, useState } from "react";
import { useQuery, useSubscription } from "urql";
import type { Viewer } from "../App.tsx";
import { type BrowserVerification, verifyExportInBrowser } from "../audit/verifyInBrowser.ts";
import { describeError } from "../errors.ts";
import { graphql, type ResultOf, type VariablesOf } from "../graphql.ts";
import type { SessionStore } from "../session.ts";

const AuditEventFields = graphql(`
  fragment AuditEventFields on AuditEvent @_unmask {
    cursor
    sequence
    type
    actor
    streamType
    streamId
    occurredAt
    data
    metadata
    contentHash
    chainHash
  }
`);

const AuditLogQuery = graphql(
  `
    query AuditLog($first: Int!, $after: String, $filter: AuditLogFilter) {
      auditLog(first: $first, after: $after, filter: $filter, order: NEWEST_FIRST) {
        nodes {
          ...AuditEventFields
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  `,
  [AuditEventFields],
);

const TailSubscription = graphql(
  `
    subscription AuditTail($after: String, $types: [String!]) {
      tenantEvents(after: $after, types: $types) {
        ...AuditEventFields
      }
    }
  `,
  [AuditEventFields],
);

type AuditEvent = ResultOf<typeof AuditEventFields>;
type Filter = NonNullable<VariablesOf<typeof AuditLogQuery>["filter"]>;

const PAGE = 50;

export function Audit({ viewer, sessions }: { viewer: Viewer; sessions: SessionStore }) {
  const [filter, setFilter] = useState<Filter>({});
  if (!viewer.permissions.includes("audit:read")) return <p className="error">Reading the audit log needs the audit:read permission.</p>;
  return (
    <>
      <h1>Audit log</h1>
      <FilterForm onApply={setFilter} />
      {/* A new filter starts again from the newest (a fresh explorer). */}
      <LogExplorer key={JSON.stringify(filter)} filter={filter} />
      <ExportAndVerify sessions={sessions} />
    </>
  );
}

function FilterForm({ onApply }: { onApply: (filter: Filter) => void }) {
  const [types, setTypes] = useState("");
  const [actor, setActor] = useState("");
  const [streamId, setStreamId] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  function apply(event: FormEvent) {
    event.preventDefault();
    const list = types
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    onApply({
      ...(list.length ? { types: list } : {}),
      ...(actor.trim() ? { actor: actor.trim() } : {}),
      ...(streamId.trim() ? { streamId: streamId.trim() } : {}),
      ...(from ? { from: new Date(from).toISOString() } : {}),
      ...(to ? { to: new Date(to).toISOString() } : {}),
    });
  }
  return (
    <form className="filters" onSubmit={apply} aria-label="Filter the log">
      <label>
        Event types <input value={types} onChange={(e) => setTypes(e.target.value)} placeholder="agent.created, auth.failed" />
      </label>
      <label>
        Actor <input value={actor} onChange={(e) => setActor(e.target.value)} />
      </label>
      <label>
        Stream id <input value={streamId} onChange={(e) => setStreamId(e.target.value)} />
      </label>
      <label>
        From <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
      </label>
      <label>
        To <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
      </label>
      <button type="submit">Apply</button>
    </form>
  );
}

/** The newest events first, a page at a time; with "Live", new ones arrive on top as they commit. */
function LogExplorer({ filter }: { filter: Filter }) {
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const [live, setLive] = useState(false);
  const [tail, setTail] = useState<AuditEvent[]>([]);
  const [open, setOpen] = useState<number | null>(null);
  // Stable, so that loading one more page renders that page alone (the pages above are memoized).
  const more = useCallback((cursor: string) => setPages((p) => (p.includes(cursor) ? p : [...p, cursor])), []);
  const [first] = useQuery({ query: AuditLogQuery, variables: { first: PAGE, after: null, filter } });
  const newest = tail[0]?.cursor ?? first.data?.auditLog.nodes[0]?.cursor ?? null;
  const [{ error: tailError }] = useSubscription(
    { query: TailSubscription, variables: { after: newest, types: filter.types ?? null }, pause: !live || !first.data },
    (_previous: unknown, event) => {
      const e = event.tenantEvents;
      if (!filter.actor && !filter.streamId) setTail((t) => (t.some((x) => x.sequence === e.sequence) ? t : [e, ...t]));
      return event;
    },
  );
  if (first.error) return <p className="error">{describeError(first.error)}</p>;
  return (
    <section aria-label="Events">
      <p>
        <label>
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> Live: show new events as they are recorded
        </label>
        {tailError && <span className="error"> {describeError(tailError)}</span>}
      </p>
      <table className="log">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Actor</th>
            <th scope="col">Stream</th>
          </tr>
        </thead>
        <tbody data-testid="audit-rows">
          <Rows events={tail} open={open} setOpen={setOpen} />
          {pages.map((after) => (
            <Page key={after ?? "first"} after={after} filter={filter} open={open} setOpen={setOpen} onMore={more} last={after === pages.at(-1)} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** One page of 50 events: rendered again only when its own props change (the log can hold thousands of rows). */
const Page = memo(function Page({
  after,
  filter,
  open,
  setOpen,
  onMore,
  last,
}: {
  after: string | null;
  filter: Filter;
  open: number | null;
  setOpen: (n: number | null) => void;
  onMore: (cursor: string) => void;
  last: boolean;
}) {
  const [{ data, error, fetching }] = useQuery({ query: AuditLogQuery, variables: { first: PAGE, after, filter } });
  if (error)
    return (
      <tr>
        <td colSpan={5} className="error">
          {describeError(error)}
        </td>
      </tr>
    );
  if (!data)
    return (
      <tr>
        <td colSpan={5} aria-busy={fetching}>
          Loading…
        </td>
      </tr>
    );
  const { nodes, pageInfo } = data.auditLog;
  return (
    <>
      <Rows events={nodes} open={open} setOpen={setOpen} />
      {last && pageInfo.hasNextPage && pageInfo.endCursor && (
        <tr>
          <td colSpan={5}>
            <button type="button" onClick={() => onMore(pageInfo.endCursor!)}>
              Older events
            </button>
          </td>
        </tr>
      )}
    </>
  );
});

function Rows({ events, open, setOpen }: { events: readonly AuditEvent[]; open: number | null; setOpen: (n: number | null) => void }) {
  return events.map((e) => <EventRow key={e.sequence} event={e} open={open === e.sequence} toggle={() => setOpen(open === e.sequence ? null : e.sequence)} />);
}

function EventRow({ event: e, open, toggle }: { event: AuditEvent; open: boolean; toggle: () => void }) {
  return (
    <>
      <tr data-sequence={e.sequence}>
        <td>
          <button type="button" className="link" aria-expanded={open} onClick={toggle}>
            {e.sequence}
          </button>
        </td>
        <td>
          <time dateTime={e.occurredAt}>{new Date(e.occurredAt).toLocaleString()}</time>
        </td>
        <td>{e.type}</td>
        <td>{e.actor}</td>
        <td>
          {e.streamType}/{e.streamId}
        </td>
      </tr>
      {open && (
        <tr className="detail">
          <td colSpan={5}>
            <dl>
              <dt>Content hash</dt>
              <dd>
                <code>{e.contentHash}</code>
              </dd>
              <dt>Chain hash</dt>
              <dd>
                <code>{e.chainHash}</code>
              </dd>
              <dt>Data</dt>
              <dd>
                <pre>{JSON.stringify(e.data, null, 2)}</pre>
              </dd>
              <dt>Metadata</dt>
              <dd>
                <pre>{JSON.stringify(e.metadata, null, 2)}</pre>
              </dd>
            </dl>
          </td>
        </tr>
      )}
    </>
  );
}

/** Downloads an export (the route needs the session's token, so through fetch) and verifies files in the page. */
function ExportAndVerify({ sessions }: { sessions: SessionStore }) {
  const [format, setFormat] = useState<"ndjson" | "csv">("ndjson");
  const [types, setTypes] = useState("");
  const [exported, setExported] = useState<{ blob: Blob; name: string; url: string } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [result, setResult] = useState<(BrowserVerification & { file: string }) | null>(null);

  async function download(event: FormEvent) {
    event.preventDefault();
    setBusy("Exporting…");
    setMessage(null);
    try {
      const query = new URLSearchParams({ format });
      if (types.trim()) query.set("types", types.trim());
      const response = await fetch(`/audit/export?${query}`, { headers: { authorization: `Bearer ${sessions.current()?.accessToken ?? ""}` } });
      if (!response.ok) {
        const body = (await response.json().catch(() => ({}))) as { errors?: { message: string; extensions?: { code?: string } }[] };
        const error = body.errors?.[0];
        throw new Error(`${error?.message ?? `HTTP ${response.status}`} (${error?.extensions?.code ?? response.status})`);
      }
      const blob = await response.blob();
      if (exported) URL.revokeObjectURL(exported.url);
      const name = `keyplane-audit-${new Date().toISOString().replace(/[:.]/g, "-")}.${format}`;
      setExported({ blob, name, url: URL.createObjectURL(blob) });
    } catch (error) {
      setMessage((error as Error).message);
    } finally {
      setBusy(null);
    }
  }

  async function verify(file: Blob, name: string) {
    setBusy(`Verifying ${name}…`);
    setResult(null);
    setMessage(null);
    try {
      const keys = (await (await fetch("/.well-known/jwks.json")).json()) as JSONWebKeySet;
      setResult({ ...(await verifyExportInBrowser(file, keys)), file: name });
    } catch (error) {
      setMessage(`Could not verify: ${(error as Error).message}`);
    } finally {
      setBusy(null);
    }
  }

  return (
    <section aria-labelledby="export-heading" className="export">
      <h2 id="export-heading">Export and verify</h2>
      <form onSubmit={download} className="filters" aria-label="Export the log">
        <label>
          Format{" "}
          <select value={format} onChange={(e) => setFormat(e.target.value as "ndjson" | "csv")}>
            <option value="ndjson">NDJSON</option>
            <option value="csv">CSV</option>
          </select>
        </label>
        <label>
          Event types in full <input value={types} onChange={(e) => setTypes(e.target.value)} placeholder="all" />
        </label>
        <button type="submit" disabled={busy !== null}>
          Export
        </button>
      </form>
      {exported && (
        <p>
          <a href={exported.url} download={exported.name} data-testid="export-link">
            Download {exported.name}
          </a>{" "}
          ({Math.round(exported.blob.size / 1024)} KB){" "}
          <button type="button" disabled={busy !== null} onClick={() => verify(exported.blob, exported.name)}>
            Verify this export
          </button>
        </p>
      )}
      <p className="hint">
        Verification runs in this page, with the same verifier as <code>keyplane audit verify</code>, against the published keys: the file is not sent anywhere.
      </p>
      <label className="drop">
        Verify an export file{" "}
        <input
          type="file"
          accept=".ndjson,.csv,.jsonl,text/csv,application/x-ndjson"
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void verify(file, file.name);
          }}
        />
      </label>
      {busy && <p aria-live="polite">{busy}</p>}
      {message && (
        <p role="alert" className="error">
          {message}
        </p>
      )}
      {result && <VerificationResult result={result} />}
    </section>
  );
}

function VerificationResult({ result }: { result: BrowserVerification & { file: string } }) {
  const rate = result.seconds > 0 ? Math.round(result.events / result.seconds) : result.events;
  if (result.ok)
    return (
      <p role="status" className="ok" data-testid="verification">
        {result.file}: intact. {result.events} events from {result.startsFrom === "checkpoint" ? `checkpoint ${result.anchorSequence}` : "genesis"} to{" "}
        {result.lastSequence}, {result.checkpoints} checkpoints, signatures {result.signatures} ({rate.toLocaleString()} events/s).
      </p>
    );
  const problem = result.problem!;
  return (
    <p role="alert" className="error" data-testid="verification">
      {result.file}: NOT intact — {problem.kind}
      {problem.sequence !== null ? ` at sequence ${problem.sequence}` : ""}: {problem.message}
    </p>
  );
}
