import { createHash } from "node:crypto";
import { GraphQLError, getOperationAST, print, type ExecutionResult } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Actor } from "../auth/actor.ts";
import { DomainError } from "../errors.ts";
import type { GraphQLContext } from "../graphql/context.ts";
import { runInOneTransaction } from "../store/ambientTransaction.ts";
import { canonicalJson } from "../audit/canonicalJson.ts";
import { lookUpIdempotencyKey, storeIdempotentResponse, type IdempotencyKeyRef } from "../store/idempotencyStore.ts";

const KEY_PATTERN = /^[\x21-\x7e]{8,255}$/;

const conflict = (message: string): ExecutionResult => ({ errors: [new GraphQLError(message, { extensions: { code: "CONFLICT" } })] });

/**
 * Whose key it is: a key is only ever replayed to the principal that made it, with the same
 * permissions. A token of the same subject with other roles or scopes (a viewer token of an admin's
 * subject, say) has keys of its own, so its request runs, and is authorized, as any other.
 */
export function idempotencyPrincipal(actor: Pick<Actor, "kind" | "subject" | "roles" | "scopes">): string {
  return canonicalJson({ kind: actor.kind, subject: actor.subject, roles: [...actor.roles].sort(), scopes: [...actor.scopes].sort() });
}

/** Ends the one transaction without keeping anything, with the answer the client gets. */
class Settled extends Error {
  constructor(readonly result: ExecutionResult) {
    super("idempotent request settled without a write");
  }
}

/**
 * `Idempotency-Key` on a mutation: the request's key lookup, every write its resolvers make and its
 * stored response commit in one transaction, or none of them do. So the same principal sending the
 * same request again gets the first result and nothing is appended; the same key with a different
 * request is a CONFLICT; and a request that failed, or whose process died before it committed, left
 * nothing behind: its retry runs.
 */
export function idempotencyPlugin(): Plugin<GraphQLContext & { request: Request }> {
  return {
    onExecute({ args, executeFn, setExecuteFn, setResultAndStopExecution }) {
      const ctx = args.contextValue;
      const key = ctx.request.headers.get("idempotency-key");
      const operation = getOperationAST(args.document, args.operationName);
      if (key === null || operation?.operation !== "mutation" || !ctx.actor) return;
      if (!KEY_PATTERN.test(key)) {
        setResultAndStopExecution({
          errors: [new GraphQLError("Idempotency-Key must be 8-255 printable characters", { extensions: { code: "BAD_USER_INPUT" } })],
        });
        return;
      }
      const ref: IdempotencyKeyRef = {
        tenantId: ctx.actor.tenantId,
        principal: idempotencyPrincipal(ctx.actor),
        key,
        requestHash: createHash("sha256")
          .update(canonicalJson({ query: print(args.document), variables: args.variableValues ?? {}, operationName: args.operationName ?? null }))
          .digest("hex"),
      };
      const { db, now } = ctx.deps;
      setExecuteFn(async (executeArgs) => {
        try {
          return await runInOneTransaction(db, async () => {
            const found = await lookUpIdempotencyKey(db, ref, now());
            if (found.status === "replay") throw new Settled(replayed(found.response));
            if (found.status === "mismatch") throw new Settled(conflict("Idempotency-Key was already used for a different request"));
            if (found.status === "in-progress") throw new Settled(conflict("a request with this Idempotency-Key is still in progress"));
            const result = (await executeFn(executeArgs)) as ExecutionResult;
            // Nothing succeeded: nothing is kept (its writes roll back with the rest), and the key stays free.
            if (!anyRootFieldSucceeded(result)) throw new Settled(result);
            await storeIdempotentResponse(db, ref, storable(result), now());
            return result;
          });
        } catch (error) {
          if (error instanceof Settled) return error.result;
          throw error;
        }
      });
    },
  };
}

/** True when at least one root field of the mutation produced its value (the others may have failed). */
function anyRootFieldSucceeded(result: ExecutionResult): boolean {
  if (!result.data) return false;
  const failed = new Set((result.errors ?? []).map((e) => e.path?.[0]));
  return Object.keys(result.data).some((field) => !failed.has(field));
}

interface StoredError {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: Record<string, unknown>;
}

/** The response as the client saw it: data, and errors as Yoga masks them (an unexpected error says nothing more). */
function storable(result: ExecutionResult): { data: unknown; errors?: StoredError[] } {
  if (!result.errors?.length) return { data: result.data };
  const errors = result.errors.map((error): StoredError => {
    const original = error.originalError;
    const path = error.path ? { path: error.path } : {};
    if (original && !(original instanceof DomainError) && !(original instanceof GraphQLError))
      return { message: "Unexpected error.", ...path, extensions: { code: "INTERNAL_SERVER_ERROR" } };
    const code = original instanceof DomainError ? original.code : error.extensions?.code;
    const extensions: Record<string, unknown> = original instanceof DomainError ? { code, ...original.extensions } : { ...error.extensions };
    delete extensions.http;
    return { message: error.message, ...path, extensions };
  });
  return { data: result.data, errors };
}

function replayed(response: unknown): ExecutionResult {
  const stored = response as { data: ExecutionResult["data"]; errors?: StoredError[] };
  if (!stored.errors?.length) return { data: stored.data };
  return { data: stored.data, errors: stored.errors.map((e) => new GraphQLError(e.message, { path: e.path, extensions: e.extensions })) };
}
