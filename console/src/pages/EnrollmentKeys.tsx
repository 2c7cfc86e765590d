import { ErrorAlert } from "../ErrorAlert.tsx";
import { type FormEvent, useEffect, useId, useState } from "react";
import { type CombinedError, useMutation, useQuery } from "urql";
import type { Viewer } from "../App.tsx";
import { describeError } from "../errors.ts";
import { graphql } from "../graphql.ts";
import { useReread } from "../liveEvents.ts";

// Enrollment keys, a section of the Agents page: the key is shown once, with the command that uses it.

const EnrollmentKeysQuery = graphql(`
  query EnrollmentKeys {
    enrollmentKeys {
      id
      prefix
      description
      state
      reusable
      ephemeral
      uses
      maxUses
      tags
      agentId
      expiresAt
      lastUsedAt
      createdAt
    }
  }
`);

const CreateEnrollmentKey = graphql(`
  mutation CreateEnrollmentKey($input: CreateEnrollmentKeyInput!) {
    createEnrollmentKey(input: $input) {
      id
      key
      prefix
      expiresAt
    }
  }
`);

const RevokeEnrollmentKey = graphql(`
  mutation RevokeEnrollmentKey($id: ID!) {
    revokeEnrollmentKey(id: $id)
  }
`);

const PruneEnrollmentKeys = graphql(`
  mutation PruneEnrollmentKeys {
    pruneEnrollmentKeys
  }
`);

/** "a, b ,c" → ["a", "b", "c"] */
export const splitTags = (text: string) =>
  text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);

/** `version` changes when an event says the keys changed: the list is read again. */
export function EnrollmentKeys({ viewer, version }: { viewer: Viewer; version: number }) {
  const [{ data, error, fetching, stale }, reexecute] = useQuery({ query: EnrollmentKeysQuery });
  const refresh = useReread(fetching || stale, reexecute);
  useEffect(() => {
    if (version > 0) refresh();
  }, [version, refresh]);
  const canManage = viewer.permissions.includes("agent:manage");
  const [revoking, revoke] = useMutation(RevokeEnrollmentKey);
  const [pruning, prune] = useMutation(PruneEnrollmentKeys);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);

  const report = (error: CombinedError | undefined, done: string) => {
    setMessage(error ? { error: true, text: describeError(error) } : { error: false, text: done });
    if (!error) refresh();
  };

  const keys = data?.enrollmentKeys ?? [];
  return (
    <section aria-labelledby="keys-heading" data-testid="enrollment-keys">
      <h2 id="keys-heading">Enrollment keys</h2>
      <p className="hint">
        A machine enrolls as an agent with a key: <code>keyplane agent run --server … --key kpe_…</code>. Keyplane keeps only a key's prefix and a hash.
      </p>
      {canManage && <CreateKeyForm onCreated={refresh} />}
      <ErrorAlert error={error} />
      {keys.length === 0 ? (
        <p>No enrollment keys.</p>
      ) : (
        <table>
          <caption className="visually-hidden">Enrollment keys</caption>
          <thead>
            <tr>
              <th scope="col">Prefix</th>
              <th scope="col">Description</th>
              <th scope="col">State</th>
              <th scope="col">Uses</th>
              <th scope="col">Kind</th>
              <th scope="col">Tags</th>
              <th scope="col">Expires</th>
              {canManage && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-testid={`key-${k.prefix}`}>
                <th scope="row">
                  <code>{k.prefix}</code>
                </th>
                <td>{k.description}</td>
                <td data-testid={`key-state-${k.prefix}`}>{k.state.replace("_", " ")}</td>
                <td>
                  {k.uses}
                  {k.reusable ? ` of ${k.maxUses ?? "∞"}` : " of 1"}
                </td>
                <td>{[k.reusable ? "reusable" : "single use", k.ephemeral ? "ephemeral" : "", k.agentId ? "for one agent" : ""].filter(Boolean).join(", ")}</td>
                <td>{k.tags.join(", ")}</td>
                <td>
                  <time dateTime={k.expiresAt}>{new Date(k.expiresAt).toLocaleString()}</time>
                </td>
                {canManage && (
                  <td>
                    {k.state === "active" && (
                      <button
                        type="button"
                        className="danger"
                        aria-label={`Revoke key ${k.prefix}`}
                        disabled={revoking.fetching}
                        onClick={async () => report((await revoke({ id: k.id })).error, `Key ${k.prefix} revoked.`)}
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
      {canManage && (
        <button
          type="button"
          disabled={pruning.fetching}
          onClick={async () => {
            const result = await prune({});
            report(result.error, `Removed ${result.data?.pruneEnrollmentKeys ?? 0} expired, revoked or used-up keys.`);
          }}
        >
          Prune expired, revoked and used-up keys
        </button>
      )}
      {message && (
        <p role={message.error ? "alert" : "status"} className={message.error ? "error" : undefined}>
          {message.text}
        </p>
      )}
    </section>
  );
}

function CreateKeyForm({ onCreated }: { onCreated(): void }) {
  const id = useId();
  const [description, setDescription] = useState("");
  const [hours, setHours] = useState("1");
  const [reusable, setReusable] = useState(false);
  const [maxUses, setMaxUses] = useState("");
  const [ephemeral, setEphemeral] = useState(false);
  const [tags, setTags] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [created, setCreated] = useState<{ key: string; prefix: string; expiresAt: string } | null>(null);
  const [state, create] = useMutation(CreateEnrollmentKey);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setCreated(null);
    const result = await create({
      input: {
        description: description || undefined,
        expiresIn: Math.round(Number(hours) * 3600),
        reusable,
        maxUses: reusable && maxUses ? Number(maxUses) : undefined,
        ephemeral,
        tags: splitTags(tags),
      },
    });
    if (result.error || !result.data) return setProblem(describeError(result.error ?? new Error("no answer")));
    setCreated(result.data.createEnrollmentKey);
    setDescription("");
    onCreated();
  }

  return (
    <>
      <form className="form" onSubmit={submit} aria-label="Create an enrollment key">
        <div className="field">
          <label htmlFor={`${id}-description`}>Description</label>
          <input id={`${id}-description`} value={description} onChange={(e) => setDescription(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-hours`}>Expires in (hours)</label>
          <input id={`${id}-hours`} type="number" min="0.01" step="any" value={hours} onChange={(e) => setHours(e.target.value)} required />
        </div>
        <div className="field">
          <label htmlFor={`${id}-tags`}>Key tags</label>
          <input id={`${id}-tags`} value={tags} onChange={(e) => setTags(e.target.value)} aria-describedby={`${id}-tags-hint`} />
          <span id={`${id}-tags-hint`} className="hint">
            comma-separated; they join the tags of the agents it enrolls
          </span>
        </div>
        <div className="checks">
          <label>
            <input type="checkbox" checked={reusable} onChange={(e) => setReusable(e.target.checked)} /> Reusable
          </label>
          {reusable && (
            <span className="field inline">
              <label htmlFor={`${id}-max`}>Maximum uses</label>
              <input id={`${id}-max`} type="number" min="1" value={maxUses} onChange={(e) => setMaxUses(e.target.value)} />
            </span>
          )}
          <label>
            <input type="checkbox" checked={ephemeral} onChange={(e) => setEphemeral(e.target.checked)} /> Ephemeral (removed 30 minutes after going offline)
          </label>
        </div>
        <button type="submit" disabled={state.fetching}>
          Create enrollment key
        </button>
        {problem && (
          <p role="alert" className="error">
            {problem}
          </p>
        )}
      </form>
      {created && <NewKey created={created} onDone={() => setCreated(null)} />}
    </>
  );
}

/** The key, once: kept in this component only, gone with "Done" or on leaving the page. */
function NewKey({ created, onDone }: { created: { key: string; prefix: string; expiresAt: string }; onDone(): void }) {
  const command = `keyplane agent run --server ${location.origin} --key ${created.key}`;
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async (what: string, text: string) => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(`${what} copied.`);
    } catch {
      setCopied(`Could not copy: select the ${what.toLowerCase()} and copy it.`);
    }
  };
  return (
    <section className="panel new-key" aria-labelledby="new-key-heading" data-testid="new-key">
      <h3 id="new-key-heading">New enrollment key {created.prefix}</h3>
      <p>
        <strong>Shown once:</strong> copy it now. It expires <time dateTime={created.expiresAt}>{new Date(created.expiresAt).toLocaleString()}</time>.
      </p>
      <div className="copyable">
        <code data-testid="enrollment-key">{created.key}</code>
        <button type="button" onClick={() => copy("Key", created.key)}>
          Copy key
        </button>
      </div>
      <p>On the machine, run:</p>
      <div className="copyable">
        <code data-testid="enrollment-command">{command}</code>
        <button type="button" onClick={() => copy("Command", command)}>
          Copy command
        </button>
      </div>
      {copied && <p role="status">{copied}</p>}
      <button type="button" onClick={onDone}>
        Done (forget the key)
      </button>
    </section>
  );
}
