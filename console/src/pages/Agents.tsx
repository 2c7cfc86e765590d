import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useId, useState } from "react";
import { type CombinedError, useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql, type ResultOf } from "../graphql.ts";
import { LiveHeading } from "../LiveHeading.tsx";
import { navigate } from "../router.ts";
import { type LiveEvent, useReread, useTenantEvents } from "../liveEvents.ts";
import { EnrollmentKeys, splitTags } from "./EnrollmentKeys.tsx";

const AgentsQuery = graphql(`
  query Agents {
    agents(first: 100) {
      nodes {
        id
        name
        type
        tags
        status
        connection
        lastSeenAt
        ephemeral
        version
        config
      }
      pageInfo {
        hasNextPage
      }
    }
  }
`);

type Agent = ResultOf<typeof AgentsQuery>["agents"]["nodes"][number];

const CreateAgent = graphql(`
  mutation CreateAgent($input: CreateAgentInput!) {
    createAgent(input: $input) {
      id
      name
    }
  }
`);

const UpdateAgentConfig = graphql(`
  mutation UpdateAgentConfig($input: UpdateAgentInput!) {
    updateAgent(input: $input) {
      id
      version
      config
    }
  }
`);

const PublishAgent = graphql(`
  mutation PublishAgent($id: ID!) {
    publishAgent(id: $id) {
      id
      status
      version
    }
  }
`);

const DeleteAgent = graphql(`
  mutation DeleteAgent($id: ID!) {
    deleteAgent(id: $id)
  }
`);

/** Events that change what this page shows. */
const AGENT_EVENTS = [
  "agent.created",
  "agent.updated",
  "agent.published",
  "agent.deleted",
  "agent.enrolled",
  "agent.online",
  "agent.offline",
  "enrollment_key.created",
  "enrollment_key.used",
  "enrollment_key.revoked",
  "enrollment_key.pruned",
];

export function AgentsPage({ viewer }: { viewer: Viewer }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: AgentsQuery });
  const [keysVersion, setKeysVersion] = useState(0);
  // A mutation that answers an Agent makes urql read the list again by itself (stale meanwhile).
  const refresh = useReread(fetching || stale, reexecute);
  const live = useTenantEvents(viewer, AGENT_EVENTS, (event: LiveEvent | null) => {
    if (!event || event.type.startsWith("agent.")) refresh();
    if (!event || event.type.startsWith("enrollment_key.") || event.type === "agent.enrolled") setKeysVersion((v) => v + 1);
  });
  const canWrite = viewer.permissions.includes("agent:write");
  const canManage = viewer.permissions.includes("agent:manage");
  const [editing, setEditing] = useState<string | null>(null);
  const agents = data?.agents.nodes ?? [];
  const editedAgent = agents.find((a) => a.id === editing);

  return (
    <>
      <LiveHeading title="Agents" state={live.state} refresh={refresh} />
      <ErrorAlert error={error} />
      <ErrorAlert error={live.error} />
      {!data ? (
        <p aria-busy={fetching}>Loading…</p>
      ) : (
        <AgentTable
          agents={agents}
          more={data.agents.pageInfo.hasNextPage}
          canWrite={canWrite}
          canManage={canManage}
          onEdit={(id) => setEditing(id)}
          onChanged={refresh}
        />
      )}
      {editedAgent && canWrite && <ConfigEditor key={editedAgent.id} agent={editedAgent} onClose={() => setEditing(null)} />}
      {canWrite && <CreateAgentForm />}
      <EnrollmentKeys viewer={viewer} version={keysVersion} />
    </>
  );
}

function AgentTable(props: { agents: Agent[]; more: boolean; canWrite: boolean; canManage: boolean; onEdit(id: string): void; onChanged(): void }) {
  const { agents, canWrite, canManage } = props;
  if (agents.length === 0) return <p>No agents yet: create one below, or enroll a machine with an enrollment key.</p>;
  return (
    <table data-testid="agents-table">
      <caption className="visually-hidden">Agents of this tenant</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Type</th>
          <th scope="col">Tags</th>
          <th scope="col">Status</th>
          <th scope="col">Connection</th>
          <th scope="col">Last seen</th>
          {(canWrite || canManage) && <th scope="col">Actions</th>}
        </tr>
      </thead>
      <tbody>
        {agents.map((agent) => (
          <tr key={agent.id} data-testid={`agent-${agent.id}`}>
            <th scope="row">
              <a
                href={`/console/agents/${agent.id}`}
                onClick={(event) => {
                  event.preventDefault();
                  navigate(`/agents/${agent.id}`);
                }}
              >
                {agent.name}
              </a>
              {agent.ephemeral && <span className="tag">ephemeral</span>}
            </th>
            <td>{agent.type}</td>
            <td>
              {agent.tags.map((t) => (
                <span key={t} className="tag">
                  {t}
                </span>
              ))}
            </td>
            <td data-testid={`status-${agent.id}`}>{agent.status}</td>
            <td>
              <span className={`connection connection-${agent.connection}`} data-testid={`connection-${agent.id}`}>
                {agent.connection}
              </span>
            </td>
            <td>{agent.lastSeenAt ? <time dateTime={agent.lastSeenAt}>{new Date(agent.lastSeenAt).toLocaleString()}</time> : "never"}</td>
            {(canWrite || canManage) && (
              <td className="actions">
                {canWrite && (
                  <button type="button" aria-label={`Edit config of ${agent.name}`} onClick={() => props.onEdit(agent.id)}>
                    Edit config
                  </button>
                )}
                {canManage && <AgentActions agent={agent} onChanged={props.onChanged} />}
              </td>
            )}
          </tr>
        ))}
      </tbody>
      {props.more && (
        <tfoot>
          <tr>
            <td colSpan={7}>Showing the first 100 agents.</td>
          </tr>
        </tfoot>
      )}
    </table>
  );
}

function AgentActions({ agent, onChanged }: { agent: Agent; onChanged(): void }) {
  const [publishing, publish] = useMutation(PublishAgent);
  const [deleting, remove] = useMutation(DeleteAgent);
  const [confirming, setConfirming] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  // publishAgent answers an Agent, which urql reads the list again for; deleteAgent answers a Boolean.
  const act = async (run: () => Promise<{ error?: CombinedError }>, reread: boolean) => {
    setProblem(null);
    const result = await run();
    if (result.error) setProblem(describeError(result.error));
    else if (reread) onChanged();
  };
  return (
    <>
      {agent.status === "draft" && (
        <button type="button" aria-label={`Publish ${agent.name}`} disabled={publishing.fetching} onClick={() => act(() => publish({ id: agent.id }), false)}>
          Publish
        </button>
      )}
      {confirming ? (
        <>
          <button
            type="button"
            className="danger"
            aria-label={`Confirm deleting ${agent.name}`}
            disabled={deleting.fetching}
            onClick={() => act(() => remove({ id: agent.id }), true)}
          >
            Confirm delete
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </>
      ) : (
        <button type="button" className="danger" aria-label={`Delete ${agent.name}`} onClick={() => setConfirming(true)}>
          Delete
        </button>
      )}
      {problem && (
        <span role="alert" className="error">
          {problem}
        </span>
      )}
    </>
  );
}

/** The field an API error names (BAD_USER_INPUT's extensions.field), and its words with the code. */
export function fieldProblem(error: CombinedError): { field?: string; text: string } {
  const extensions = (error.graphQLErrors[0]?.extensions ?? {}) as { field?: unknown };
  // "tags.0" is about the tags field.
  return { field: typeof extensions.field === "string" ? extensions.field.split(".")[0] : undefined, text: describeError(error) };
}

/** JSON typed into a field: the value, or why it is not JSON (shown next to the field). */
export function parseJson(text: string): { value: unknown } | { problem: string } {
  if (text.trim() === "") return { value: undefined };
  try {
    return { value: JSON.parse(text) };
  } catch (caught) {
    return { problem: `Not JSON: ${(caught as Error).message}` };
  }
}

/** A labelled textarea of JSON with its problem next to it (announced, and named by aria-describedby). */
export function JsonField(props: { label: string; value: string; onChange(value: string): void; problem?: string | null; rows?: number; testId?: string }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <textarea
        id={id}
        className="json"
        spellCheck={false}
        rows={props.rows ?? 4}
        value={props.value}
        aria-invalid={props.problem ? true : undefined}
        aria-describedby={props.problem ? `${id}-problem` : undefined}
        data-testid={props.testId}
        onChange={(event) => props.onChange(event.target.value)}
      />
      {props.problem && (
        <p id={`${id}-problem`} role="alert" className="error field-problem">
          {props.problem}
        </p>
      )}
    </div>
  );
}

/** A labelled input with the API's problem for it next to it. */
function TextField(props: { label: string; value: string; onChange(value: string): void; problem?: string; required?: boolean; hint?: string }) {
  const id = useId();
  const described = [props.hint ? `${id}-hint` : "", props.problem ? `${id}-problem` : ""].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        value={props.value}
        required={props.required}
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

function CreateAgentForm() {
  const [name, setName] = useState("");
  const [type, setType] = useState("");
  const [tags, setTags] = useState("");
  const [config, setConfig] = useState("{}");
  const [problem, setProblem] = useState<{ field?: string; text: string } | null>(null);
  const [created, setCreated] = useState<string | null>(null);
  const [state, create] = useMutation(CreateAgent);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setCreated(null);
    const parsed = parseJson(config);
    if ("problem" in parsed) return setProblem({ field: "config", text: parsed.problem });
    setProblem(null);
    const result = await create({ input: { name, type, tags: splitTags(tags), config: parsed.value ?? {} } });
    if (result.error) return setProblem(fieldProblem(result.error));
    setCreated(result.data?.createAgent.name ?? name);
    setName("");
    setType("");
    setTags("");
    setConfig("{}");
  }

  const on = (field: string) => (problem?.field === field ? problem.text : undefined);
  const general = problem && !["name", "type", "tags", "config"].includes(problem.field ?? "") ? problem.text : null;
  return (
    <section aria-labelledby="create-agent-heading">
      <h2 id="create-agent-heading">Create an agent</h2>
      <form className="form" onSubmit={submit} aria-label="Create an agent">
        <TextField label="Name" value={name} onChange={setName} problem={on("name")} required />
        <TextField label="Type" value={type} onChange={setType} problem={on("type")} required hint="e.g. support-bot, coding-agent" />
        <TextField label="Tags" value={tags} onChange={setTags} problem={on("tags")} hint="comma-separated" />
        <JsonField label="Config (JSON object)" value={config} onChange={setConfig} problem={on("config")} rows={3} />
        <button type="submit" disabled={state.fetching}>
          Create agent
        </button>
        {general && (
          <p role="alert" className="error">
            {general}
          </p>
        )}
        {created && <p role="status">Created {created} (draft).</p>}
      </form>
    </section>
  );
}

function ConfigEditor({ agent, onClose }: { agent: Agent; onClose(): void }) {
  // Edited on the version it was opened (or last saved) on: a change made meanwhile is CONFLICT, not lost.
  const [base, setBase] = useState({ version: agent.version, text: JSON.stringify(agent.config, null, 2) });
  const [text, setText] = useState(base.text);
  const [problem, setProblem] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [state, update] = useMutation(UpdateAgentConfig);
  const changedMeanwhile = agent.version !== base.version;

  async function save(event: FormEvent) {
    event.preventDefault();
    setSaved(false);
    const parsed = parseJson(text);
    if ("problem" in parsed) return setProblem(parsed.problem);
    const result = await update({ input: { id: agent.id, expectedVersion: base.version, config: parsed.value ?? {} } });
    if (result.error || !result.data) return setProblem(describeError(result.error ?? new Error("no answer")));
    const next = result.data.updateAgent;
    setBase({ version: next.version, text: JSON.stringify(next.config, null, 2) });
    setProblem(null);
    setSaved(true);
  }

  function reload() {
    const fresh = { version: agent.version, text: JSON.stringify(agent.config, null, 2) };
    setBase(fresh);
    setText(fresh.text);
    setProblem(null);
  }

  return (
    <section aria-labelledby="config-heading" className="panel">
      <h2 id="config-heading">Config of {agent.name}</h2>
      <form className="form" onSubmit={save} aria-label={`Config of ${agent.name}`}>
        <JsonField label={`Config of ${agent.name} (JSON object)`} value={text} onChange={setText} problem={problem} rows={8} testId="config-editor" />
        <p className="hint">
          Editing version {base.version}.{changedMeanwhile && ` Version ${agent.version} was saved meanwhile: load it, or saving answers CONFLICT.`}
        </p>
        <div className="buttons">
          <button type="submit" disabled={state.fetching}>
            Save config
          </button>
          {changedMeanwhile && (
            <button type="button" onClick={reload}>
              Load version {agent.version}
            </button>
          )}
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
        {saved && <p role="status">Saved.</p>}
      </form>
    </section>
  );
}
