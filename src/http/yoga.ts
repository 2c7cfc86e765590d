import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import type { IncomingMessage, ServerResponse } from "node:http";
import { GraphQLError } from "graphql";
import { createYoga, type Plugin, type YogaServerInstance } from "graphql-yoga";
import type { AppDeps } from "../app/deps.ts";
import { DomainError, UnavailableError } from "../errors.ts";
import { logContext } from "../logger.ts";
import type { GraphQLContext } from "../graphql/context.ts";
import { schema } from "../graphql/schema.ts";
import { authenticateRequest, documentLimitPlugins, rateLimitPlugin } from "./graphqlProtection.ts";
import { corsPlugin } from "./cors.ts";
import { idempotencyPlugin } from "./idempotencyPlugin.ts";
import { graphqlMetricsPlugin } from "./graphqlMetrics.ts";
import { isDatabaseUnavailable } from "../store/databaseErrors.ts";
import { requestMetaOf } from "./requestMeta.ts";
import { sharedSubscriptionResults } from "./sharedSubscriptionResults.ts";
import { subscriptionsFollowTheirToken } from "./subscriptionTokenWatch.ts";
import { wellFormedInputPlugin } from "./wellFormedInputPlugin.ts";

export interface ServerContext {
  req?: IncomingMessage;
  res?: ServerResponse;
}

// GraphQL's own refusals of a document are the caller's bad input (validation: validationErrorsAreBadInput).
const DOCUMENT_ERROR_CODES = new Set(["GRAPHQL_PARSE_FAILED", "BAD_REQUEST"]);

export function createGraphQLServer(deps: AppDeps): YogaServerInstance<ServerContext, GraphQLContext> {
  // Document limits, query cost and request limits (src/http/graphqlProtection.ts).
  const guarded = deps.config.limits.protections !== false;
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    // Only the configured origins, without credentials (src/http/cors.ts); Yoga's own CORS is off.
    cors: false,
    // GraphiQL (not in production) from the installed package's own assets, not a CDN, so it works
    // offline; its Headers tab starts with the header a token goes in.
    graphiql:
      deps.config.env !== "production"
        ? {
            title: "Keyplane",
            headers: JSON.stringify({ authorization: "Bearer <paste ./data/admin-token here>" }, null, 2),
            defaultEditorToolsVisibility: "headers",
            defaultQuery: "{\n  me { subject tenantId roles }\n  tenant { id name tier }\n}\n",
          }
        : false,
    renderGraphiQL,
    // Documents that fail to parse are not cached: hostile ones vary, and keeping each error (with its
    // source) costs several times more than parsing it again (bench:limits, part C).
    parserAndValidationCache: { errorCache: { get: () => undefined, set: () => {} } },
    // Batches are counted as one request and each of their operations is costed (GRAPHQL_MAX_BATCH).
    batching: deps.config.limits.document.maxBatch > 0 ? { limit: 100 } : false,
    logging: {
      debug: (...args) => deps.logger.debug({ yoga: args.map(String) }),
      info: (...args) => deps.logger.info({ yoga: args.map(String) }),
      warn: (...args) => deps.logger.warn({ yoga: args.map(String) }),
      // Expected failures (a refused token in the context) are not server errors.
      error: (...args) =>
        args.some((a) => a instanceof DomainError) ? deps.logger.debug({ yoga: args.map(String) }) : deps.logger.error({ yoga: args.map(String) }),
    },
    context: async ({ request, req }) => {
      const meta = requestMetaOf(request, req);
      const actor = await authenticateRequest(deps, request, meta);
      const log = logContext.getStore();
      if (log && actor) Object.assign(log, { tenantId: actor.tenantId, actor: actor.subject });
      return { actor, meta, deps };
    },
    maskedErrors: {
      maskError(error, message) {
        const original = rootCause(error);
        // The database down or restarting: a retryable UNAVAILABLE (HTTP 503, Retry-After), not a bug.
        const known = original instanceof DomainError ? original : isDatabaseUnavailable(original ?? error) ? new UnavailableError() : undefined;
        if (known) {
          if (known.code === "UNAVAILABLE") deps.logger.warn({ err: original ?? error }, "database unavailable");
          return new GraphQLError(known.message, {
            nodes: error instanceof GraphQLError ? error.nodes : undefined,
            path: error instanceof GraphQLError ? error.path : undefined,
            extensions: { code: known.code, ...known.extensions, ...httpOf(known) },
          });
        }
        if (error instanceof GraphQLError && (original === undefined || original instanceof GraphQLError)) {
          const code = error.extensions?.code;
          if (typeof code === "string" && DOCUMENT_ERROR_CODES.has(code)) {
            return new GraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, code: "BAD_USER_INPUT", reason: code } });
          }
          // A variable of the wrong type: GraphQL's coercion error, before any field ran.
          if (code === undefined && !error.path) {
            return new GraphQLError(error.message, {
              nodes: error.nodes,
              extensions: { ...error.extensions, code: "BAD_USER_INPUT", reason: "GRAPHQL_VARIABLES_INVALID" },
            });
          }
          return error;
        }
        deps.logger.error({ err: original ?? error }, "unexpected error");
        return new GraphQLError(message, { extensions: { code: "INTERNAL_SERVER_ERROR" } });
      },
    },
    plugins: [
      ...(guarded ? documentLimitPlugins(deps.config.limits.document) : []),
      validationErrorsAreBadInput(),
      wellFormedInputPlugin(), // before anything reads the input: query cost, idempotency hashing, resolvers
      ...(guarded ? [rateLimitPlugin(deps)] : []),
      idempotencyPlugin(),
      corsPlugin(deps.config.corsOrigins),
      graphqlMetricsPlugin(deps.metrics),
      subscriptionsFollowTheirToken(deps.tokenWatch),
      sharedSubscriptionResults(),
    ],
  });
}

/** Yoga answers validation failures without passing them through maskError; they are bad input too. */
function validationErrorsAreBadInput(): Plugin {
  return {
    onValidate:
      () =>
      ({ valid, result, setResult }) => {
        if (valid) return;
        setResult(
          result.map(
            (e) =>
              new GraphQLError(e.message, {
                nodes: e.nodes,
                source: e.source,
                positions: e.positions,
                extensions: { ...e.extensions, code: "BAD_USER_INPUT", reason: e.extensions?.reason ?? "GRAPHQL_VALIDATION_FAILED" },
              }),
          ),
        );
      },
  };
}

/** The HTTP status (and Retry-After) a GraphQL-over-HTTP answer takes from its error's code; none for the others (200). */
function httpOf(error: DomainError): { http?: { status: number; headers?: Record<string, string> } } {
  if (error.code === "UNAUTHENTICATED") return { http: { status: 401 } };
  if (error.code === "TENANT_SUSPENDED") return { http: { status: 403 } };
  if (error.code === "RATE_LIMITED") return { http: { status: 429 } };
  if (error.code === "UNAVAILABLE") return { http: { status: 503, headers: { "Retry-After": String(error.extensions.retryAfter) } } };
  return {};
}

/** The error a resolver threw, under however many GraphQLError wrappers execution added. */
function rootCause(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError) {
    if (!current.originalError) return current === error ? undefined : current;
    current = current.originalError;
  }
  return current;
}
