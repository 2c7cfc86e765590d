import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from "graphql";
import { isAsyncIterable, type Plugin } from "graphql-yoga";
import type { GraphQLContext } from "../graphql/context.ts";

/**
 * A subscription's event is executed once per distinct operation, not once per subscriber: the live
 * feed hands the same event object to every subscriber of its tenant, and subscribers that sent the
 * same document, operation and variables, with the same roles and scopes, get the same result (the
 * result depends on nothing else). graphql-js' own subscribe, with the execution of each source
 * event remembered per event object (forgotten with it).
 */
export function sharedSubscriptionResults(): Plugin<GraphQLContext> {
  return {
    onSubscribe: ({ setSubscribeFn }) => setSubscribeFn(subscribeShared as never),
  };
}

/** Executions of subscription events, and the results handed out: for benchmarks. */
export const subscriptionExecutionStats = { executions: 0, results: 0 };

const results = new WeakMap<object, Map<string, ExecutionResult | Promise<ExecutionResult>>>();

async function subscribeShared(args: ExecutionArgs): Promise<AsyncIterable<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return source as ExecutionResult;
  const key = operationKey(args);
  const run = (event: unknown) => {
    subscriptionExecutionStats.executions++;
    return execute({ ...args, rootValue: event });
  };
  return mapEvents(source, (event) => {
    subscriptionExecutionStats.results++;
    if (event === null || typeof event !== "object") return run(event);
    let byOperation = results.get(event);
    if (!byOperation) results.set(event, (byOperation = new Map()));
    let result = byOperation.get(key);
    if (!result) byOperation.set(key, (result = run(event)));
    return result;
  });
}

const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;

/** What an event's result depends on besides the event: the operation, its variables, and what the caller may see. */
function operationKey(args: ExecutionArgs): string {
  let id = documentIds.get(args.document);
  if (id === undefined) documentIds.set(args.document, (id = nextDocumentId++));
  const actor = (args.contextValue as GraphQLContext).actor;
  const who = actor ? `${actor.tenantId}\u0000${[...actor.roles].sort().join(",")}\u0000${[...actor.scopes].sort().join(",")}` : "";
  return `${id}\u0000${args.operationName ?? ""}\u0000${JSON.stringify(args.variableValues ?? {})}\u0000${who}`;
}

/** The source's events mapped; return() reaches the source at once, even while an event is awaited. */
function mapEvents(
  source: AsyncIterable<unknown>,
  map: (event: unknown) => ExecutionResult | Promise<ExecutionResult>,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      const next = await iterator.next();
      return next.done ? { done: true, value: undefined } : { done: false, value: await map(next.value) };
    },
    async return() {
      await iterator.return?.();
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      await iterator.return?.();
      throw error;
    },
  };
}
