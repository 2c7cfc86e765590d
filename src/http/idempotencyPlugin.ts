import { createHash } from "node:crypto";
import { GraphQLError, getOperationAST, print, type ExecutionResult } from "graphql";
import type { Plugin } from "graphql-yoga";
import { canonicalJson } from "../store/events/canonicalJson.ts";
import { claimIdempotencyKey, completeIdempotencyKey, releaseIdempotencyKey, type IdempotencyKeyRef } from "../store/idempotencyStore.ts";
import type { GraphQLContext } from "../graphql/context.ts";

const KEY_PATTERN = /^[\x21-\x7e]{8,255}$/;

const conflict = (message: string): ExecutionResult => ({ errors: [new GraphQLError(message, { extensions: { code: "CONFLICT" } })] });

/**
 * `Idempotency-Key` on a mutation: the same principal sending the same request again gets the first
 * result and nothing is appended; the same key with a different request is a CONFLICT.
 */
export function idempotencyPlugin(): Plugin<GraphQLContext & { request: Request }> {
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      const ctx = args.contextValue;
      const key = ctx.request.headers.get("idempotency-key");
      const operation = getOperationAST(args.document, args.operationName);
      if (key === null || operation?.operation !== "mutation" || !ctx.actor) return;
      if (!KEY_PATTERN.test(key)) {
        setResultAndStopExecution({ errors: [new GraphQLError("Idempotency-Key must be 8-255 printable characters", { extensions: { code: "BAD_USER_INPUT" } })] });
        return;
      }
      const ref: IdempotencyKeyRef = {
        tenantId: ctx.actor.tenantId,
        principal: ctx.actor.subject,
        key,
        requestHash: createHash("sha256")
          .update(canonicalJson({ query: print(args.document), variables: args.variableValues ?? {}, operationName: args.operationName ?? null }))
          .digest("hex"),
      };
      const claim = await claimIdempotencyKey(ctx.deps.db, ref, ctx.deps.now());
      if (claim.status === "replay") return setResultAndStopExecution(claim.response as ExecutionResult);
      if (claim.status === "mismatch") return setResultAndStopExecution(conflict("Idempotency-Key was already used for a different request"));
      if (claim.status === "in-progress") return setResultAndStopExecution(conflict("a request with this Idempotency-Key is still in progress"));
      return {
        async onExecuteDone({ result }) {
          if (Symbol.asyncIterator in Object(result)) return;
          const single = result as ExecutionResult;
          // Only a fully successful result is kept; a failed request appended nothing and may be retried.
          if (single.data && !single.errors?.length) await completeIdempotencyKey(ctx.deps.db, ref, { data: single.data });
          else await releaseIdempotencyKey(ctx.deps.db, ref);
        },
      };
    },
  };
}
