import { BREAK, GraphQLError, Kind, visit, type DocumentNode, type ExecutionResult, type ValueNode } from "graphql";
import type { Plugin } from "graphql-yoga";
import { findInputProblem, findProblemIn, MAX_INPUT_DEPTH, type InputNode, type InputProblem } from "../domain/wellFormedInput.ts";

// Every GraphQL operation's input is checked before anything touches it (src/domain/wellFormedInput.ts:
// no NUL, no lone surrogate, at most MAX_INPUT_DEPTH levels of objects and lists), for every transport:
//  - HTTP (POST, GET, batches, SSE): the parsed request, in onRequestParseDone, before any operation
//    of it is counted, authenticated, parsed or run. A batch with one bad operation is refused whole.
//  - every operation, HTTP or graphql-ws (websocket.ts executes through yoga.getEnveloped): variables,
//    operationName, extensions and the document's own literals, in onExecute/onSubscribe. This plugin
//    sits before the rate limits (query cost reads the variables) and the idempotency plugin (which
//    hashes them with JSON.stringify) in yoga.ts; a refusal ends the hook chain there, so no later
//    plugin, store or resolver sees the input.
//  - parse: a document nested past the parser's stack (only possible with GRAPHQL_MAX_TOKENS raised
//    or protections off) is BAD_USER_INPUT, not a RangeError.

/** BAD_USER_INPUT (HTTP 400) naming the field; the message never echoes the value. */
export function malformedInputError(problem: InputProblem): GraphQLError {
  return new GraphQLError(problem.message, { extensions: { code: "BAD_USER_INPUT", reason: problem.reason, field: problem.field, http: { status: 400 } } });
}

interface OperationInput {
  operationName?: unknown;
  variables?: unknown;
  extensions?: unknown;
}

/** The first problem in an operation's request parameters (`prefix` locates the operation in a batch). */
export function operationInputProblem(params: OperationInput, prefix = ""): InputProblem | undefined {
  return (
    findInputProblem(params.operationName, `${prefix}operationName`) ??
    findInputProblem(params.variables, `${prefix}variables`) ??
    findInputProblem(params.extensions, `${prefix}extensions`)
  );
}

/** A GraphQL literal as the walk sees it: strings, objects (field names are GraphQL names) and lists. */
function expandLiteral(node: ValueNode): InputNode<ValueNode> {
  switch (node.kind) {
    case Kind.STRING:
      return { string: node.value };
    case Kind.OBJECT:
      return { entries: node.fields.map((f) => [f.name.value, f.value] as const) };
    case Kind.LIST:
      return { entries: node.values.entries() };
    default:
      return undefined;
  }
}

/**
 * The first literal of the document that cannot be stored: arguments of fields and directives
 * (path `createAgent.input.config.a`, `agents@include.if`) and variable defaults (`variables.input`).
 * A field's arguments are one level, as the variables object is, so a literal and a variable of the
 * same shape nest equally deep. (graphql-js's lexer already refuses lone surrogates in documents;
 * a "\u0000" escape is valid GraphQL, and an object literal can nest as deep as the token limit allows.)
 */
export function documentInputProblem(document: DocumentNode): InputProblem | undefined {
  let found: InputProblem | undefined;
  // Path segments with their separators: ".field", "@directive", "variables.name".
  const segments: string[] = [];
  const path = () => segments.join("").replace(/^\./, "");
  const check = (value: ValueNode, field: string) => {
    found = findProblemIn(value, field, expandLiteral, 1);
    return found ? BREAK : false;
  };
  // graphql-js's visit keeps its own stack (no recursion), and returning false skips a value's subtree.
  visit(document, {
    OperationDefinition: { enter: () => void (segments.length = 0) },
    FragmentDefinition: { enter: () => void (segments.length = 0) },
    VariableDefinition: {
      enter(node) {
        segments.push(`variables.${node.variable.name.value}`);
        if (node.defaultValue) return check(node.defaultValue, path()) || undefined;
        return undefined;
      },
      leave: () => void segments.pop(),
    },
    Field: { enter: (node) => void segments.push(`.${(node.alias ?? node.name).value}`), leave: () => void segments.pop() },
    Directive: { enter: (node) => void segments.push(`@${node.name.value}`), leave: () => void segments.pop() },
    Argument: { enter: (node) => check(node.value, `${path()}.${node.name.value}`) },
  });
  return found;
}

/** The request parameters of one operation as Yoga keeps them in its context (HTTP) or as websocket.ts passes them (graphql-ws). */
type WithParams = { params?: OperationInput } | undefined;

// Yoga's parser cache hands the same DocumentNode to every request with the same text, and a
// document's literals never change: each is walked once.
const documentProblems = new WeakMap<DocumentNode, InputProblem | null>();
function cachedDocumentInputProblem(document: DocumentNode): InputProblem | undefined {
  let problem = documentProblems.get(document);
  if (problem === undefined) documentProblems.set(document, (problem = documentInputProblem(document) ?? null));
  return problem ?? undefined;
}

function checkOperation(args: {
  document: DocumentNode;
  variableValues?: unknown;
  operationName?: unknown;
  contextValue?: unknown;
}): ExecutionResult | undefined {
  const params = (args.contextValue as WithParams)?.params;
  const problem =
    operationInputProblem({ operationName: args.operationName, variables: args.variableValues, extensions: params?.extensions }) ??
    cachedDocumentInputProblem(args.document);
  return problem ? { errors: [malformedInputError(problem)] } : undefined;
}

/** The one place every GraphQL input is checked before it is used (see the top of this file). */
export function wellFormedInputPlugin(): Plugin {
  return {
    onRequestParse: () => ({
      onRequestParseDone({ requestParserResult }) {
        const batch = Array.isArray(requestParserResult);
        const operations: unknown[] = batch ? requestParserResult : [requestParserResult];
        operations.forEach((params, i) => {
          if (typeof params !== "object" || params === null) return; // Yoga refuses it itself
          const problem = operationInputProblem(params as OperationInput, batch ? `[${i}].` : "");
          if (problem) throw malformedInputError(problem);
        });
      },
    }),
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, options) => {
        try {
          return parseFn(source, options);
        } catch (error) {
          // graphql-js parses nested selections and literals recursively.
          if (error instanceof RangeError) {
            throw malformedInputError({
              field: "query",
              reason: "TOO_DEEP",
              message: `query: the document nests too deeply to parse (at most ${MAX_INPUT_DEPTH} levels of input are accepted)`,
            });
          }
          throw error;
        }
      });
    },
    onExecute({ args, setResultAndStopExecution }) {
      const refused = checkOperation(args);
      if (refused) setResultAndStopExecution(refused);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const refused = checkOperation(args);
      if (refused) setResultAndStopExecution(refused);
    },
  };
}
