import type { DocumentNode } from "@0no-co/graphql.web";
import { stringifyDocument } from "urql";
import { graphql } from "./graphql.ts";

// The console's session: a short-lived access token and its rotating refresh token, exchanged for the
// token a person pasted (startSession), so that the long-lived token is kept nowhere in the browser.
// Held in memory and in sessionStorage (this tab only, gone with it), refreshed a minute before it
// expires, and revoked on sign-out (endSession).

export interface Session {
  accessToken: string;
  refreshToken: string;
  expiresAt: string;
}

const STORAGE_KEY = "keyplane.session";
const REFRESH_BEFORE_MS = 60_000;

const START = graphql(`
  mutation StartSession {
    startSession {
      accessToken
      refreshToken
      expiresAt
    }
  }
`);

const REFRESH = graphql(`
  mutation RefreshSession($refreshToken: String!) {
    refreshSession(refreshToken: $refreshToken) {
      accessToken
      refreshToken
      expiresAt
    }
  }
`);

const REDEEM = graphql(`
  mutation RedeemSignInCode($code: String!) {
    redeemSignInCode(code: $code) {
      accessToken
      refreshToken
      expiresAt
    }
  }
`);

const END = graphql(`
  mutation EndSession {
    endSession
  }
`);

/** An answer of the API that is not data: its first error, with the code Keyplane gives it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** One GraphQL request over HTTP, outside urql: signing in and out happen before and after its client. */
async function post<T>(document: DocumentNode, variables: Record<string, unknown>, token?: string): Promise<T> {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query: stringifyDocument(document), variables }),
  });
  const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: { message: string; extensions?: { code?: string; retryAfter?: number } }[] };
  const error = body.errors?.[0];
  if (error) throw new ApiError(error.message, error.extensions?.code ?? "INTERNAL", error.extensions?.retryAfter);
  if (!body.data) throw new ApiError(`Keyplane answered HTTP ${response.status}`, "UNAVAILABLE");
  return body.data;
}

type Listener = (session: Session | null) => void;

export interface SessionStore {
  current(): Session | null;
  subscribe(listener: Listener): () => void;
  /** Exchanges a pasted token for a session; the pasted token is not kept. */
  signIn(token: string): Promise<void>;
  /** Exchanges a one-time sign-in code (a link of `keyplane console link`) for a session, in place of any session held. */
  redeem(code: string): Promise<void>;
  /** Why the last sign-in link was refused (for the sign-in page), until the next sign-in. */
  problem(): ApiError | null;
  /** Revokes the session (when Keyplane can be reached) and forgets it. */
  signOut(): Promise<void>;
  /** A fresh pair now (also done on a timer): false when the session is gone. */
  refresh(): Promise<boolean>;
}

export function createSessionStore(storage: Storage = sessionStorage): SessionStore {
  let session: Session | null = read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let refreshing: Promise<boolean> | undefined;
  let problem: ApiError | null = null;
  const listeners = new Set<Listener>();

  function read(): Session | null {
    try {
      const stored = JSON.parse(storage.getItem(STORAGE_KEY) ?? "null") as Session | null;
      return stored && Date.parse(stored.expiresAt) > 0 ? stored : null;
    } catch {
      return null;
    }
  }

  function set(next: Session | null) {
    session = next;
    if (next) problem = null;
    if (next) storage.setItem(STORAGE_KEY, JSON.stringify(next));
    else storage.removeItem(STORAGE_KEY);
    clearTimeout(timer);
    if (next) timer = setTimeout(() => void store.refresh(), Math.max(0, Date.parse(next.expiresAt) - Date.now() - REFRESH_BEFORE_MS));
    for (const listener of listeners) listener(next);
  }

  const store: SessionStore = {
    current: () => session,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async signIn(token) {
      const data = await post<{ startSession: Session & { refreshToken: string | null } }>(START, {}, token.trim());
      const { accessToken, refreshToken, expiresAt } = data.startSession;
      if (!refreshToken) throw new ApiError("Keyplane started a session without a refresh token", "INTERNAL");
      set({ accessToken, refreshToken, expiresAt });
    },
    async redeem(code) {
      // Nothing read under the session held is shown to the link's principal (the client is per session).
      if (session) await store.signOut();
      try {
        const data = await post<{ redeemSignInCode: Session & { refreshToken: string | null } }>(REDEEM, { code: code.trim() });
        const { accessToken, refreshToken, expiresAt } = data.redeemSignInCode;
        if (!refreshToken) throw new ApiError("Keyplane started a session without a refresh token", "INTERNAL");
        set({ accessToken, refreshToken, expiresAt });
      } catch (error) {
        problem = error instanceof ApiError ? error : new ApiError("Keyplane cannot be reached; check that it is running.", "UNAVAILABLE");
        for (const listener of listeners) listener(session);
        throw problem;
      }
    },
    problem: () => problem,
    async signOut() {
      const ending = session;
      set(null);
      if (ending) await post(END, {}, ending.accessToken).catch(() => {});
    },
    refresh() {
      refreshing ??= (async () => {
        const presented = session;
        if (!presented) return false;
        try {
          const data = await post<{ refreshSession: Session & { refreshToken: string | null } }>(REFRESH, { refreshToken: presented.refreshToken });
          const { accessToken, refreshToken, expiresAt } = data.refreshSession;
          set({ accessToken, refreshToken: refreshToken ?? presented.refreshToken, expiresAt });
          return true;
        } catch (error) {
          // Refused (spent, revoked or expired): signed out. Unreachable: try again on the next request.
          if (error instanceof ApiError && error.code === "UNAUTHENTICATED") set(null);
          return false;
        } finally {
          refreshing = undefined;
        }
      })();
      return refreshing;
    },
  };
  if (session) set(session);
  return store;
}
