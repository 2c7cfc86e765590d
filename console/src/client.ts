import { createClient as createSocketClient } from "graphql-ws";
import { cacheExchange, Client, fetchExchange, subscriptionExchange } from "urql";
import type { SessionStore } from "./session.ts";

/**
 * The console's one client of the API: queries and mutations over HTTP, subscriptions over graphql-ws
 * on the same /graphql, each with the session's current access token. A new client per session, so
 * that nothing one principal read is shown to the next.
 */
export function createApiClient(sessions: SessionStore): Client {
  const bearer = () => {
    const session = sessions.current();
    return session ? `Bearer ${session.accessToken}` : undefined;
  };
  const socket = createSocketClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
    connectionParams: () => ({ authorization: bearer() }),
    lazy: true,
    retryAttempts: Number.POSITIVE_INFINITY,
    // A socket closed for an expired token (4403) reconnects with the refreshed one.
    shouldRetry: () => sessions.current() !== null,
  });
  return new Client({
    url: "/graphql",
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: socket.subscribe({ ...request, query: request.query ?? "" }, sink) }),
        }),
      }),
    ],
    fetchOptions: (): RequestInit => {
      const authorization = bearer();
      return { headers: authorization ? { authorization } : {} };
    },
    requestPolicy: "cache-and-network",
    // POST for every operation: documents stay out of URLs (and of any proxy's access log).
    preferGetMethod: false,
  });
}
