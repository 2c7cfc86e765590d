import { type FormEvent, useState, useSyncExternalStore } from "react";
import { describeError } from "../errors.ts";
import type { SessionStore } from "../session.ts";

export function SignIn({ sessions }: { sessions: SessionStore }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // A sign-in link that was refused (main.tsx redeems it on load).
  const linkProblem = useSyncExternalStore(sessions.subscribe, sessions.problem);
  const shown =
    error ??
    (linkProblem === null
      ? null
      : linkProblem.code === "UNAUTHENTICATED"
        ? `The sign-in link did not work: ${linkProblem.message}. Ask for a new one (keyplane console link), or paste a token. (${linkProblem.code})`
        : describeError(linkProblem));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await sessions.signIn(token);
      setToken("");
    } catch (caught) {
      setError(describeError(caught as Error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="sign-in">
      <h1>Keyplane console</h1>
      <form onSubmit={submit}>
        <label htmlFor="token">Access token</label>
        <p className="hint" id="token-hint">
          Paste a Keyplane token, for example the admin token that the first start wrote to <code>./data/admin-token</code>. The console exchanges it for a
          short session and keeps only that, in this tab.
        </p>
        <textarea
          id="token"
          name="token"
          aria-describedby="token-hint"
          autoComplete="off"
          spellCheck={false}
          rows={4}
          value={token}
          onChange={(event) => setToken(event.target.value)}
          required
        />
        <button type="submit" disabled={busy || token.trim() === ""}>
          Sign in
        </button>
        {shown && (
          <p role="alert" className="error">
            {shown}
          </p>
        )}
      </form>
    </main>
  );
}
