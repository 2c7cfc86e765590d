import { getOperationAST, type DocumentNode, type ExecutionResult, type GraphQLError, type OperationDefinitionNode } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Metrics } from "../metrics.ts";

/**
 * Counts and times GraphQL operations for /metrics, by operation type, operation name, first root
 * field and outcome. Labels stay bounded: the root field comes from the schema (the document is
 * validated before execution), the outcome is a code of a fixed set, and operation names are the
 * clients' own: well-formed names are kept up to `maxOperationNames` per process, later ones count
 * as "other", and an operation without a name is "anonymous".
 * Runs for HTTP, SSE and graphql-ws alike (graphql-ws executes through the same Yoga plugins).
 */
export function graphqlMetricsPlugin(metrics: Pick<Metrics, "graphqlOperations" | "graphqlDuration">, options: { maxOperationNames?: number } = {}): Plugin {
  const maxNames = options.maxOperationNames ?? 200;
  const names = new Set<string>();

  function nameLabel(name: string | undefined): string {
    if (!name) return "anonymous";
    if (names.has(name)) return name;
    if (!OPERATION_NAME.test(name) || names.size >= maxNames) return "other";
    names.add(name);
    return name;
  }

  function labelsOf(document: DocumentNode, operationName: string | null | undefined) {
    const operation = getOperationAST(document, operationName ?? undefined);
    return {
      type: operation?.operation ?? "unknown",
      operation: nameLabel(operation?.name?.value),
      root_field: rootFieldOf(operation),
    };
  }

  return {
    onExecute({ args }) {
      const labels = labelsOf(args.document, args.operationName);
      const started = process.hrtime.bigint();
      return {
        onExecuteDone({ result }) {
          const outcome = isAsyncIterable(result) ? "ok" : outcomeOf(result);
          metrics.graphqlOperations.inc({ ...labels, outcome });
          metrics.graphqlDuration.observe({ type: labels.type, operation: labels.operation }, Number(process.hrtime.bigint() - started) / 1e9);
        },
      };
    },
    onSubscribe({ args }) {
      const labels = labelsOf(args.document, args.operationName);
      return {
        // A stream is a started subscription; a plain result is a refusal (FORBIDDEN, bad input, ...).
        onSubscribeResult({ result }) {
          metrics.graphqlOperations.inc({ ...labels, outcome: isAsyncIterable(result) ? "ok" : outcomeOf(result) });
        },
      };
    },
  };
}

const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const CODE = /^[A-Z][A-Z_]{1,40}$/;

function rootFieldOf(operation: OperationDefinitionNode | null | undefined): string {
  const first = operation?.selectionSet.selections[0];
  return first?.kind === "Field" ? first.name.value : "unknown";
}

/** "ok", or the code of the first error (DomainError codes, GraphQL's own), else "error". */
function outcomeOf(result: ExecutionResult): string {
  const error = result.errors?.[0] as GraphQLError | undefined;
  if (!error) return "ok";
  const code = error.extensions?.code ?? (error.originalError as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && CODE.test(code) ? code : "error";
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}
