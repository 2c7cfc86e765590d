import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useEffect, useId, useState } from "react";
import { useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { graphql, type ResultOf } from "../graphql.ts";
import { LiveHeading } from "../LiveHeading.tsx";
import { type LiveEvent, useReread, useTenantEvents } from "../liveEvents.ts";
import { fieldProblem, JsonField, parseJson } from "./Agents.tsx";

const TasksQuery = graphql(`
  query Tasks {
    tasks(first: 50) {
      nodes {
        id
        agentId
        kind
        status
        payload
        progress
        progressMessage
        result
        error
        dispatchedBy
        dispatchedAt
        claimedAt
        finishedAt
        deadlineAt
      }
      pageInfo {
        hasNextPage
      }
    }
    agents(first: 100) {
      nodes {
        id
        name
        connection
      }
    }
  }
`);

type Task = ResultOf<typeof TasksQuery>["tasks"]["nodes"][number];
type AgentChoice = ResultOf<typeof TasksQuery>["agents"]["nodes"][number];

const DispatchTask = graphql(`
  mutation DispatchTask($input: DispatchTaskInput!) {
    dispatchTask(input: $input) {
      id
      status
    }
  }
`);

const TASK_EVENTS = [
  "task.dispatched",
  "task.claimed",
  "task.progressed",
  "task.completed",
  "task.failed",
  "task.timed_out",
  "agent.created",
  "agent.enrolled",
  "agent.deleted",
  "agent.online",
  "agent.offline",
];

/** What a person reads for a task's state: a claimed task with progress is "in progress". */
function statusLabel(task: Task): string {
  if (task.status === "claimed" && (task.progress != null || task.progressMessage)) return "in progress";
  return task.status.replace("_", " ");
}

export function TasksPage({ viewer }: { viewer: Viewer }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: TasksQuery });
  // dispatchTask answers a Task, which makes urql read the list again by itself (stale meanwhile).
  const refresh = useReread(fetching || stale, reexecute);
  const live = useTenantEvents(viewer, TASK_EVENTS, (_event: LiveEvent | null) => refresh());
  const canDispatch = viewer.permissions.includes("agent:write");

  // The states each task was seen in on this page, so a person sees it move: pending → claimed → completed.
  const [seen, setSeen] = useState<Record<string, string[]>>({});
  useEffect(() => {
    if (!data) return;
    setSeen((before) => {
      let changed = false;
      const after = { ...before };
      for (const task of data.tasks.nodes) {
        const label = statusLabel(task);
        const trail = after[task.id] ?? [];
        if (trail.at(-1) !== label) {
          after[task.id] = [...trail, label];
          changed = true;
        }
      }
      return changed ? after : before;
    });
  }, [data]);

  const agents = data?.agents.nodes ?? [];
  const names = new Map(agents.map((a) => [a.id, a.name]));
  return (
    <>
      <LiveHeading title="Tasks" state={live.state} refresh={refresh} />
      <ErrorAlert error={error} />
      <ErrorAlert error={live.error} />
      {canDispatch && data && <DispatchForm agents={agents} />}
      <section aria-labelledby="tasks-heading">
        <h2 id="tasks-heading">Recent tasks</h2>
        {!data ? (
          <p aria-busy={fetching}>Loading…</p>
        ) : data.tasks.nodes.length === 0 ? (
          <p>No tasks yet.</p>
        ) : (
          <table data-testid="tasks-table">
            <caption className="visually-hidden">The tenant's tasks, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">Agent</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Dispatched</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {data.tasks.nodes.map((task) => (
                <tr key={task.id} data-testid={`task-${task.id}`}>
                  <th scope="row">
                    <code title={task.id}>{task.id.slice(0, 8)}</code>
                  </th>
                  <td>{names.get(task.agentId) ?? task.agentId}</td>
                  <td>{task.kind}</td>
                  <td>
                    <span className={`task-status task-${task.status}`} data-testid={`task-status-${task.id}`}>
                      {statusLabel(task)}
                    </span>
                    {task.progressMessage && <span className="hint"> {task.progressMessage}</span>}
                    {(seen[task.id]?.length ?? 0) > 1 && (
                      <div className="hint" data-testid={`task-trail-${task.id}`}>
                        {seen[task.id]!.join(" → ")}
                      </div>
                    )}
                  </td>
                  <td>
                    <time dateTime={task.dispatchedAt}>{new Date(task.dispatchedAt).toLocaleString()}</time>
                    <div className="hint">by {task.dispatchedBy}</div>
                  </td>
                  <td>
                    {task.error ? (
                      <span className="error">{task.error}</span>
                    ) : task.result !== null && task.result !== undefined ? (
                      <code className="json-inline" data-testid={`task-result-${task.id}`}>
                        {JSON.stringify(task.result)}
                      </code>
                    ) : (
                      ""
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

function DispatchForm({ agents }: { agents: AgentChoice[] }) {
  const id = useId();
  const [agentId, setAgentId] = useState("");
  const [kind, setKind] = useState("echo");
  const [payload, setPayload] = useState('{ "hello": "world" }');
  const [timeout, setTimeoutSeconds] = useState("300");
  const [problem, setProblem] = useState<{ field?: string; text: string } | null>(null);
  const [dispatched, setDispatched] = useState<string | null>(null);
  const [state, dispatch] = useMutation(DispatchTask);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setDispatched(null);
    const parsed = parseJson(payload);
    if ("problem" in parsed) return setProblem({ field: "payload", text: parsed.problem });
    setProblem(null);
    const result = await dispatch({ input: { agentId, kind, payload: parsed.value ?? null, timeoutSeconds: Number(timeout) } });
    if (result.error || !result.data) return setProblem(result.error ? fieldProblem(result.error) : { text: "Keyplane did not answer." });
    setDispatched(result.data.dispatchTask.id);
  }

  const on = (field: string) => (problem?.field === field ? problem.text : undefined);
  const general = problem && !["agentId", "kind", "payload", "timeoutSeconds"].includes(problem.field ?? "") ? problem.text : null;
  const problemOf = (field: string) =>
    on(field) && (
      <p id={`${id}-${field}-problem`} role="alert" className="error field-problem">
        {on(field)}
      </p>
    );
  return (
    <section aria-labelledby="dispatch-heading">
      <h2 id="dispatch-heading">Dispatch a task</h2>
      <form className="form" onSubmit={submit} aria-label="Dispatch a task">
        <div className="field">
          <label htmlFor={`${id}-agent`}>Agent</label>
          <select
            id={`${id}-agent`}
            value={agentId}
            required
            onChange={(e) => setAgentId(e.target.value)}
            aria-describedby={on("agentId") ? `${id}-agentId-problem` : undefined}
          >
            <option value="">Choose an agent…</option>
            {agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name} ({a.connection})
              </option>
            ))}
          </select>
          {problemOf("agentId")}
        </div>
        <div className="field">
          <label htmlFor={`${id}-kind`}>Kind</label>
          <input
            id={`${id}-kind`}
            value={kind}
            required
            onChange={(e) => setKind(e.target.value)}
            aria-describedby={`${id}-kind-hint${on("kind") ? ` ${id}-kind-problem` : ""}`}
          />
          <span id={`${id}-kind-hint`} className="hint">
            what the agent runs; the reference agent knows echo and http-check
          </span>
          {problemOf("kind")}
        </div>
        <JsonField label="Input (JSON)" value={payload} onChange={setPayload} problem={on("payload")} rows={3} />
        <div className="field">
          <label htmlFor={`${id}-timeout`}>Timeout (seconds)</label>
          <input
            id={`${id}-timeout`}
            type="number"
            min="1"
            max="86400"
            value={timeout}
            onChange={(e) => setTimeoutSeconds(e.target.value)}
            aria-describedby={on("timeoutSeconds") ? `${id}-timeoutSeconds-problem` : undefined}
          />
          {problemOf("timeoutSeconds")}
        </div>
        <button type="submit" disabled={state.fetching}>
          Dispatch
        </button>
        {general && (
          <p role="alert" className="error">
            {general}
          </p>
        )}
        {dispatched && (
          <p role="status" data-testid="dispatched" data-task-id={dispatched}>
            Dispatched task <code>{dispatched.slice(0, 8)}</code>.
          </p>
        )}
      </form>
    </section>
  );
}
