import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { jsonWithin } from "../../domain/byteLimits.ts";
import { taskDecider, taskStream } from "../../domain/task/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { NotFoundError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import { findAgentState } from "../../store/queries/agentQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { taskNotifier } from "./taskNotifier.ts";
import { findTask, type TaskRow } from "../../store/queries/taskQueries.ts";
import { MAX_TASK_JSON_BYTES } from "./taskLimits.ts";

export const DEFAULT_TASK_TIMEOUT_SECONDS = 300;
export const MAX_TASK_TIMEOUT_SECONDS = 86_400;

export const DispatchTaskInput = z.object({
  agentId: z.string().trim().min(1, "required").max(200),
  kind: z
    .string()
    .max(60, "at most 60 characters")
    .regex(/^[a-z0-9]+([._-][a-z0-9]+)*$/, "a slug: lower-case letters and digits, separated by '-', '_' or '.'"),
  payload: jsonWithin(MAX_TASK_JSON_BYTES).optional(),
  timeoutSeconds: z
    .number()
    .int("a whole number of seconds")
    .min(1, `between 1 and ${MAX_TASK_TIMEOUT_SECONDS}`)
    .max(MAX_TASK_TIMEOUT_SECONDS, `between 1 and ${MAX_TASK_TIMEOUT_SECONDS}`)
    .nullish()
    .transform((v) => v ?? DEFAULT_TASK_TIMEOUT_SECONDS),
});

/**
 * Dispatches a task to one agent of the caller's tenant (task.dispatched). The agent must exist and
 * not be deleted. The payload is recorded in the audit log as given: it must hold no secret.
 * Subscriptions of that agent in this process are woken once the task is committed.
 */
export async function dispatchTask(deps: Pick<AppDeps, "db" | "now">, actor: Actor, input: unknown, request: RequestMeta = {}): Promise<TaskRow> {
  const { agentId, kind, payload, timeoutSeconds } = parseInput(DispatchTaskInput, input);
  const tenantId = actor.tenantId;
  const taskId = randomUUID();
  const task = await withTenant(deps.db, tenantId, async (trx) => {
    // The tenant's log lock first (the append takes it anyway): an agent.deleted cannot commit between
    // the check below and this task's append.
    await sql`select last_seq from tenant_heads where tenant_id = ${tenantId} for update`.execute(trx);
    const agent = await findAgentState(trx, tenantId, agentId);
    if (!agent || agent.status === "deleted") throw new NotFoundError("agent");
    const now = deps.now();
    await decideAndAppend(trx, {
      tenantId,
      ...taskStream(taskId),
      decider: taskDecider,
      command: { type: "DispatchTask", taskId, agentId, kind, payload: payload ?? null, timeoutSeconds, now },
      metadata: eventMetadata(actor, request),
      occurredAt: now,
    });
    return (await findTask(trx, tenantId, taskId))!;
  });
  taskNotifier(deps.db).notify(tenantId, agentId);
  return task;
}
