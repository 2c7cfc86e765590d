import { GraphQLError, type ExecutionResult } from "graphql";
import { isAsyncIterable, type Plugin } from "graphql-yoga";
import { abortableStream } from "../runtime/abortableStream.ts";
import type { Actor } from "../auth/actor.ts";
import type { CredentialEnd, TokenWatch } from "../auth/tokenWatch.ts";
import type { GraphQLContext } from "../graphql/context.ts";

/**
 * A subscription over HTTP (SSE) follows its token as a WebSocket does (src/http/websocket.ts): when
 * the token or its session is revoked, its tenant suspended, or the token expires, the stream sends
 * one error naming why (UNAUTHENTICATED, or TENANT_SUSPENDED) and ends. Over graphql-ws the socket itself is closed instead.
 */
export function subscriptionsFollowTheirToken(tokenWatch: TokenWatch): Plugin<GraphQLContext> {
  return {
    onSubscribe: ({ args }) => ({
      onSubscribeResult: ({ result, setResult }) => {
        const { actor, transport } = args.contextValue as GraphQLContext;
        if (!actor || transport === "ws" || !isAsyncIterable(result)) return;
        setResult(endWithCredential(result, tokenWatch, actor));
      },
    }),
  };
}

function endWithCredential(source: AsyncIterable<ExecutionResult>, tokenWatch: TokenWatch, actor: Actor): AsyncGenerator<ExecutionResult, void, undefined> {
  return abortableStream(async function* (signal) {
    const iterator = source[Symbol.asyncIterator]();
    let ended: CredentialEnd | undefined;
    let wake!: () => void;
    const stopped = new Promise<null>((resolve) => (wake = () => resolve(null)));
    signal.addEventListener("abort", wake, { once: true });
    const unwatch = tokenWatch.watch(actor, (reason) => {
      ended = reason;
      wake();
    });
    try {
      for (;;) {
        const next = await Promise.race([iterator.next(), stopped]);
        if (next === null) {
          if (ended)
            yield { errors: [new GraphQLError(ended, { extensions: { code: ended === "Tenant suspended" ? "TENANT_SUSPENDED" : "UNAUTHENTICATED" } })] };
          return;
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      unwatch();
      await iterator.return?.();
    }
  });
}
