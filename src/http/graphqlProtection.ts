import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import { maxDirectivesRule } from "@escape.tech/graphql-armor-max-directives";
import { blockFieldSuggestionsPlugin } from "@escape.tech/graphql-armor-block-field-suggestions";
import {
  getNamedType,
  getOperationAST,
  GraphQLError,
  isIntrospectionType,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type OperationDefinitionNode,
  type ValidationContext,
  type ValidationRule,
} from "graphql";
import type { Plugin } from "graphql-yoga";
import type { AppDeps } from "../app/deps.ts";
import { authenticate } from "../app/authenticate.ts";
import type { Actor, RequestMeta } from "../auth/actor.ts";
import type { Tier } from "../domain/tenant/events.ts";
import { ConfigError } from "../config.ts";
import type { GraphQLContext } from "../graphql/context.ts";
import type { LimitsConfig } from "../config.ts";
import { operationCost, PageSizeError } from "../limits/queryCost.ts";
import { rateLimitedError, rateLimitHeaders, type Decision, type PolicyCheck, type RateLimits } from "../limits/rateLimits.ts";
import { requestMetaOf } from "./requestMeta.ts";

// GraphQL abuse protection and rate limits as Yoga/envelop plugins. They serve HTTP and graphql-ws
// alike (websocket.ts runs operations through yoga.getEnveloped): document limits at parse and
// validation, request limits before parsing (HTTP, in onParams) or before execution (WebSocket
// operations, which have no onParams), query cost before execution, headers on the HTTP answer.

/** A document refusal: BAD_USER_INPUT, with `reason` naming the limit. */
function documentError(message: string, reason: string, extensions: Record<string, unknown> = {}, nodes?: GraphQLError["nodes"]): GraphQLError {
  return new GraphQLError(message, { nodes, extensions: { code: "BAD_USER_INPUT", reason, ...extensions, http: { status: 400 } } });
}

/**
 * Depth, aliases and directives (graphql-armor's rules), tokens (graphql-js's own parser limit),
 * introspection and field suggestions. A refusal is cheap: the token limit stops the parser itself,
 * and the document limits are checked in a visit of their own before GraphQL's validation, which a
 * refused document never reaches.
 */
export function documentLimitPlugins(limits: LimitsConfig["document"]): Plugin[] {
  const report = (reason: string) => [
    (context: ValidationContext | null, error: GraphQLError) => context?.reportError(documentError(error.message.replace(/^Syntax Error: /, ""), reason)),
  ];
  const rules: ValidationRule[] = [
    maxDepthRule({
      n: limits.maxDepth,
      ignoreIntrospection: true,
      propagateOnRejection: false,
      onReject: report("MAX_DEPTH_EXCEEDED"),
    }) as unknown as ValidationRule,
    maxAliasesRule({ n: limits.maxAliases, propagateOnRejection: false, onReject: report("MAX_ALIASES_EXCEEDED") }) as unknown as ValidationRule,
    maxDirectivesRule({ n: limits.maxDirectives, propagateOnRejection: false, onReject: report("MAX_DIRECTIVES_EXCEEDED") }) as unknown as ValidationRule,
  ];
  if (!limits.introspection) rules.push(noIntrospection);
  // Yoga's parser cache hands the same DocumentNode to every request with the same text (and the
  // schema is fixed): each document is checked once.
  const refusals = new WeakMap<DocumentNode, readonly GraphQLError[]>();
  const plugins: Plugin[] = [
    {
      onParse({ parseFn, setParseFn }) {
        setParseFn((source, options) => {
          try {
            return parseFn(source, { ...options, maxTokens: limits.maxTokens });
          } catch (error) {
            // graphql-js: "Syntax Error: Document contains more that N tokens. Parsing aborted."
            if (error instanceof GraphQLError && /tokens\. Parsing aborted/.test(error.message))
              throw documentError(`Token limit of ${limits.maxTokens} exceeded.`, "MAX_TOKENS_EXCEEDED");
            throw error;
          }
        });
      },
      onValidate({ params, setResult }) {
        let refused = refusals.get(params.documentAST);
        if (!refused) refusals.set(params.documentAST, (refused = validate(params.schema, params.documentAST, rules)));
        if (refused.length) setResult([...refused]);
      },
    },
  ];
  if (!limits.fieldSuggestions) plugins.push(blockFieldSuggestionsPlugin({ mask: "" }) as Plugin);
  if (limits.maxBatch > 0) plugins.push(batchLimit(limits.maxBatch));
  return plugins;
}

/**
 * operationCost, remembered for operations without variables: those cost the same every time, and
 * Yoga's parser cache hands the same nodes for the same text. One per plugin (its cost settings).
 */
function rememberedCosts(): typeof operationCost {
  const fixed = new WeakMap<OperationDefinitionNode, number>();
  return (...args) => {
    const operation = args[2];
    if (operation.variableDefinitions?.length) return operationCost(...args);
    let cost = fixed.get(operation);
    if (cost === undefined) fixed.set(operation, (cost = operationCost(...args)));
    return cost;
  };
}

/** `__schema` and `__type` refused (`__typename` stays). */
const noIntrospection: ValidationRule = (context) => ({
  Field(node) {
    const type = context.getType();
    if (type && isIntrospectionType(getNamedType(type))) {
      context.reportError(documentError(`introspection is disabled (field "${node.name.value}")`, "INTROSPECTION_DISABLED", {}, [node]));
    }
  },
});

/** More operations in one batched request than allowed: refused whole, before any is parsed. */
function batchLimit(max: number): Plugin {
  return {
    onRequestParse: () => ({
      onRequestParseDone({ requestParserResult }) {
        if (Array.isArray(requestParserResult) && requestParserResult.length > max) {
          throw new GraphQLError(`at most ${max} operations in one batched request`, {
            extensions: { code: "BAD_USER_INPUT", reason: "BATCH_TOO_LARGE", http: { status: 413 } },
          });
        }
      },
    }),
  };
}

/** Allowed operation hashes (sha256 of the document text, hex): a JSON array, a JSON object keyed by hash, or one per line. */
export function loadPersistedOperations(file: string): Set<string> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`GRAPHQL_PERSISTED_OPERATIONS_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let hashes: string[];
  const trimmed = text.trim();
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    const parsed = JSON.parse(trimmed) as unknown;
    hashes = Array.isArray(parsed) ? parsed.map(String) : Object.keys(parsed as object);
  } else {
    hashes = trimmed.split(/\s+/).filter(Boolean);
  }
  const set = new Set(hashes.map((h) => h.toLowerCase().replace(/^sha256:/, "")));
  for (const h of set) if (!/^[0-9a-f]{64}$/.test(h)) throw new ConfigError(`GRAPHQL_PERSISTED_OPERATIONS_FILE: "${h.slice(0, 80)}" is not a sha256 hex hash`);
  return set;
}

export const operationHash = (query: string) => createHash("sha256").update(query).digest("hex");

interface RequestState {
  /** The request-count decision (one per HTTP request, shared by the operations of a batch). */
  request?: Promise<Decision>;
  checks: PolicyCheck[];
}
const states = new WeakMap<object, RequestState>();
const stateOf = (request: object): RequestState => {
  let state = states.get(request);
  if (!state) states.set(request, (state = { checks: [] }));
  return state;
};

const authenticated = new WeakMap<Request, Promise<Actor | null>>();
/**
 * The request's Actor, verified once however often it is asked for: the limits ask before parsing,
 * the context asks again when it is built, the operations of a batch share it.
 */
export function authenticateRequest(deps: AppDeps, request: Request, meta: RequestMeta): Promise<Actor | null> {
  let actor = authenticated.get(request);
  if (!actor) authenticated.set(request, (actor = authenticate(deps, request.headers.get("authorization"), meta)));
  return actor;
}

type OperationContext = GraphQLContext & { request?: Request; params?: { query?: string } };

function rateLimitedResult(refused: PolicyCheck, extensions: Record<string, unknown> = {}): ExecutionResult {
  const error = rateLimitedError(refused);
  return {
    errors: [
      new GraphQLError(error.message, {
        extensions: { code: error.code, ...error.extensions, http: { status: 429, headers: { "Retry-After": String(refused.resetSeconds) } } },
      }),
    ],
    ...(Object.keys(extensions).length ? { extensions } : {}),
  };
}

/**
 * Request limits, persisted operations, query cost and the RateLimit headers.
 *  - HTTP: the request is counted in onParams, before its document is parsed (a refused request
 *    costs a token check and a counter); a batch counts once.
 *  - graphql-ws: each operation is counted as it starts (onExecute/onSubscribe), with the tenant's
 *    tier read afresh (the connection's Actor was verified when it opened).
 *  - Every operation's cost is computed before execution, refused over GRAPHQL_MAX_COST, and charged
 *    to the tenant's budget of the minute; `extensions.cost` reports it (when limits are on).
 */
export function rateLimitPlugin(deps: AppDeps & { limits: RateLimits }): Plugin {
  const limits = deps.limits;
  const doc = limits.config.document;
  const persisted = doc.persistedOnly && doc.persistedFile ? loadPersistedOperations(doc.persistedFile) : undefined;
  const costOf = rememberedCosts();

  // The tenant's standing as the authentication cache keeps it (fresh within AUTH_CACHE_REVALIDATE_MS, and
  // dropped at once on a tier change): no round trip per operation in the steady state.
  async function tierNow(actor: Actor): Promise<Tier | undefined> {
    return (await deps.standing.standing(actor)).tier ?? undefined;
  }

  async function admit(args: ExecutionArgs, stop: (result: ExecutionResult) => void): Promise<Record<string, unknown> | undefined> {
    const { schema, document, operationName } = args;
    const ctx = args.contextValue as OperationContext;
    const variables = args.variableValues as Record<string, unknown> | null | undefined;
    const state = ctx.request ? stateOf(ctx.request) : { checks: [] as PolicyCheck[] };
    let tier = ctx.actor?.tenantTier;
    if (limits.enabled && !state.request) {
      // An operation that did not come through onParams: a graphql-ws operation.
      if (ctx.actor) tier = await tierNow(ctx.actor);
      state.request = limits.checkRequest(ctx.actor, tier, ctx.meta);
      const decision = await state.request;
      state.checks.push(...decision.checks);
      if (decision.refused) return void stop(rateLimitedResult(decision.refused));
    }
    if (persisted && ctx.actor?.kind === "user") {
      const query = ctx.params?.query;
      if (typeof query !== "string" || !persisted.has(operationHash(query))) {
        return void stop({
          errors: [documentError("only persisted operations are accepted: this document's sha256 is not in the allowed list", "PERSISTED_OPERATION_REQUIRED")],
        });
      }
    }
    const operation = getOperationAST(document, operationName ?? undefined);
    if (!operation) return undefined;
    let requested: number;
    try {
      requested = costOf(schema, document, operation, variables, doc);
    } catch (error) {
      if (error instanceof PageSizeError) return void stop({ errors: [documentError(error.message, "PAGE_SIZE_INVALID", { field: error.field })] });
      throw error;
    }
    const cost: Record<string, unknown> = { requested, maximum: doc.maxCost };
    if (requested > doc.maxCost) {
      return void stop({
        errors: [
          documentError(
            `query cost ${requested} is over the maximum of ${doc.maxCost}: ask for fewer objects (smaller first/last, fewer nested lists)`,
            "QUERY_COST_EXCEEDED",
            { cost },
          ),
        ],
        extensions: { cost },
      });
    }
    if (ctx.actor && limits.enabled) {
      const charged = await limits.chargeCost(ctx.actor, tier, requested, ctx.meta);
      const check = charged.checks[0];
      if (check) {
        state.checks.push(check);
        Object.assign(cost, { budget: check.limit, remaining: check.remaining, resetSeconds: check.resetSeconds });
      }
      if (charged.refused) return void stop(rateLimitedResult(charged.refused, { cost }));
    }
    // Reported where it is charged: with RATE_LIMITS off, answers stay as GraphQL made them.
    return limits.enabled ? cost : undefined;
  }

  return {
    async onParams({ request, context, setResult }) {
      if (!limits.enabled) return;
      const state = stateOf(request);
      if (!state.request) {
        const meta = requestMetaOf(request, (context as { req?: IncomingMessage }).req);
        state.request = (async () => {
          let actor: Actor | null;
          try {
            actor = await authenticateRequest(deps, request, meta);
          } catch {
            // A refused token, counted against its address when it was recorded: past the address's
            // limit it is answered 429, else the context answers UNAUTHENTICATED. Only a refused
            // token asks: a valid one is never refused for other clients' failures at its address.
            const blocked = await limits.refusedCredential(meta);
            if (blocked) {
              state.checks.push(...blocked.checks);
              return blocked;
            }
            return { checks: [] };
          }
          const decision = await limits.checkRequest(actor, actor?.tenantTier, meta);
          state.checks.push(...decision.checks);
          return decision;
        })();
      }
      // Refused before its document is even parsed.
      const decision = await state.request;
      if (decision.refused) setResult(rateLimitedResult(decision.refused));
    },
    onExecute({ args, setResultAndStopExecution }) {
      return (async () => {
        const cost = await admit(args, setResultAndStopExecution);
        if (!cost) return;
        return {
          onExecuteDone({ result, setResult }) {
            if (result && typeof result === "object" && !(Symbol.asyncIterator in result)) {
              const r = result as ExecutionResult;
              setResult({ ...r, extensions: { ...r.extensions, cost } });
            }
          },
        };
      })();
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      return (async () => {
        await admit(args, setResultAndStopExecution);
      })();
    },
    onResponse({ request, response }) {
      const state = states.get(request);
      if (!state?.checks.length) return;
      for (const [name, value] of Object.entries(rateLimitHeaders(state.checks))) response.headers.set(name, value);
    },
  };
}
