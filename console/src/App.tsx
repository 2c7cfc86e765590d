import { ErrorAlert } from "./ErrorAlert.tsx";
import { useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { Provider, useQuery } from "urql";
import { createApiClient } from "./client.ts";
import { graphql, type ResultOf } from "./graphql.ts";
import { AgentDetail } from "./pages/AgentDetail.tsx";
import { AgentsPage } from "./pages/Agents.tsx";
import { Audit } from "./pages/Audit.tsx";
import { GitHubTokens } from "./pages/GitHubTokens.tsx";
import { Installations } from "./pages/Installations.tsx";
import { LogStreamsPage } from "./pages/LogStreams.tsx";
import { Overview } from "./pages/Overview.tsx";
import { RetentionPage } from "./pages/Retention.tsx";
import { SignIn } from "./pages/SignIn.tsx";
import { TasksPage } from "./pages/Tasks.tsx";
import { Tenants } from "./pages/Tenants.tsx";
import { navigate, usePath } from "./router.ts";
import type { SessionStore } from "./session.ts";

export const ViewerQuery = graphql(`
  query Viewer {
    me {
      subject
      kind
      roles
      permissions
      liveEventTypes
      tenantId
    }
  }
`);

export type Viewer = ResultOf<typeof ViewerQuery>["me"];

/** The pages, each shown to a principal holding the permission it needs (the server checks again). */
const PAGES = [
  { path: "/", title: "Overview", needs: "tenant:read" },
  { path: "/agents", title: "Agents", needs: "agent:read" },
  { path: "/tasks", title: "Tasks", needs: "agent:read" },
  { path: "/installations", title: "Installations", needs: "installation:read" },
  { path: "/github-tokens", title: "GitHub tokens", needs: "token-policy:read" },
  { path: "/log-streams", title: "Log streams", needs: "log-stream:manage" },
  { path: "/audit", title: "Audit", needs: "audit:read" },
  { path: "/retention", title: "Retention", needs: "tenant:read" },
  { path: "/tenants", title: "Tenants", needs: "tenant:list" },
] as const;

export function App({ sessions }: { sessions: SessionStore }) {
  const session = useSyncExternalStore(sessions.subscribe, sessions.current);
  // One client per session (a refresh keeps it, and its subscriptions): nothing read under one
  // principal is shown to the next.
  const signedIn = session !== null;
  const client = useMemo(() => (signedIn ? createApiClient(sessions) : null), [signedIn, sessions]);
  if (!session || !client) return <SignIn sessions={sessions} />;
  return (
    <Provider value={client}>
      <SignedIn sessions={sessions} />
    </Provider>
  );
}

function SignedIn({ sessions }: { sessions: SessionStore }) {
  const [{ data, error }] = useQuery({ query: ViewerQuery });
  const path = usePath();
  const [signingOut, setSigningOut] = useState(false);
  const viewer = data?.me;
  const pages = PAGES.filter((p) => viewer?.permissions.includes(p.needs));
  // An agent's own page (/agents/<id>) sits under Agents.
  const agentId = /^\/agents\/([^/]+)$/.exec(path)?.[1];
  const page = pages.find((p) => p.path === (agentId ? "/agents" : path)) ?? pages[0];
  useEffect(() => {
    document.title = `${page?.title ?? "Console"} · Keyplane`;
  }, [page]);
  return (
    <div className="layout">
      <header className="topbar">
        <span className="brand">Keyplane</span>
        <nav aria-label="Pages">
          {pages.map((p) => (
            <a
              key={p.path}
              href={`/console${p.path}`}
              aria-current={p.path === page?.path ? "page" : undefined}
              onClick={(event) => {
                event.preventDefault();
                navigate(p.path);
              }}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <span className="who" data-testid="who">
          {viewer ? `${viewer.subject} · ${viewer.tenantId} · ${viewer.roles.join(", ")}` : ""}
        </span>
        <button
          type="button"
          disabled={signingOut}
          onClick={async () => {
            setSigningOut(true);
            await sessions.signOut();
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <ErrorAlert error={error} />
        {viewer && page?.path === "/" && <Overview viewer={viewer} />}
        {viewer && page?.path === "/agents" && (agentId ? <AgentDetail viewer={viewer} id={decodeURIComponent(agentId)} /> : <AgentsPage viewer={viewer} />)}
        {viewer && page?.path === "/tasks" && <TasksPage viewer={viewer} />}
        {viewer && page?.path === "/installations" && <Installations viewer={viewer} />}
        {viewer && page?.path === "/github-tokens" && <GitHubTokens viewer={viewer} />}
        {viewer && page?.path === "/log-streams" && <LogStreamsPage viewer={viewer} />}
        {viewer && page?.path === "/audit" && <Audit viewer={viewer} sessions={sessions} />}
        {viewer && page?.path === "/retention" && <RetentionPage viewer={viewer} />}
        {viewer && page?.path === "/tenants" && <Tenants viewer={viewer} />}
      </main>
    </div>
  );
}
