import { agentIdOf } from "../../app/agents/agentPrincipal.ts";
import { TaskIdInput } from "../../app/tasks/actOnOwnTask.ts";
import { claimTask } from "../../app/tasks/claimTask.ts";
import { completeTask } from "../../app/tasks/completeTask.ts";
import { DEFAULT_TASK_TIMEOUT_SECONDS, dispatchTask, MAX_TASK_TIMEOUT_SECONDS } from "../../app/tasks/dispatchTask.ts";
import { failTask } from "../../app/tasks/failTask.ts";
import { reportTaskProgress } from "../../app/tasks/reportTaskProgress.ts";
import { watchAgentTasks } from "../../app/tasks/watchAgentTasks.ts";
import { parseInput } from "../../domain/validation.ts";
import { withTenant } from "../../store/db.ts";
import { findTask, listTasks, pendingTasksOf, type TaskRow } from "../../store/queries/taskQueries.ts";
import { builder } from "../builder.ts";
import { checkPageSize, connectionType, pageArgs, timeIdCursor } from "../pagination.ts";

const TaskStatus = builder.enumType("TaskStatus", {
  values: {
    pending: { description: "Dispatched; waiting for its agent to claim it" },
    claimed: { description: "Its agent is working on it" },
    completed: {},
    failed: {},
    timed_out: { description: "Its deadline passed while it was pending or claimed" },
  } as const,
});

export const Task = builder.objectRef<TaskRow>("Task").implement({
  description: "Work dispatched to one agent. Every transition is an event in the audit log, payload and result included: they must hold no secret.",
  fields: (t) => ({
    id: t.exposeID("task_id"),
    agentId: t.exposeID("agent_id", { description: "The one agent the task was dispatched to" }),
    kind: t.exposeString("kind"),
    payload: t.field({ type: "JSON", nullable: true, resolve: (r) => r.payload }),
    status: t.field({ type: TaskStatus, resolve: (r) => r.status }),
    timeoutSeconds: t.exposeInt("timeout_seconds"),
    dispatchedAt: t.field({ type: "DateTime", resolve: (r) => r.dispatched_at }),
    dispatchedBy: t.exposeString("dispatched_by", { description: "Subject of the caller that dispatched it" }),
    claimedAt: t.field({ type: "DateTime", nullable: true, resolve: (r) => r.claimed_at }),
    finishedAt: t.field({ type: "DateTime", nullable: true, description: "When it completed, failed or timed out", resolve: (r) => r.finished_at }),
    deadlineAt: t.field({ type: "DateTime", description: "dispatchedAt + timeoutSeconds: it must be finished by then", resolve: (r) => r.deadline_at }),
    progress: t.field({ type: "JSON", nullable: true, description: "The last progress the agent reported", resolve: (r) => r.progress }),
    progressMessage: t.exposeString("progress_message", { nullable: true }),
    result: t.field({ type: "JSON", nullable: true, resolve: (r) => r.result }),
    error: t.exposeString("error", { nullable: true }),
    version: t.exposeInt("version"),
  }),
});

// Keyset cursor over (dispatched_at, task_id): stable while tasks are dispatched.
const taskCursor = timeIdCursor<TaskRow>("task", (r) => ({ at: r.dispatched_at, id: r.task_id }));
const TaskConnection = connectionType({ connection: "TaskConnection", edge: "TaskEdge" }, Task, taskCursor);

const TaskFilter = builder.inputType("TaskFilter", {
  fields: (t) => ({
    agentId: t.id({ required: false }),
    status: t.field({ type: TaskStatus, required: false }),
    kind: t.string({ required: false }),
  }),
});

const DispatchTaskInput = builder.inputType("DispatchTaskInput", {
  fields: (t) => ({
    agentId: t.id({ required: true, description: "An agent of the caller's tenant that is not deleted" }),
    kind: t.string({
      required: true,
      description: "What to do, as the agent knows it: a slug of at most 60 characters (a-z, 0-9, separated by '-', '_' or '.')",
    }),
    payload: t.field({ type: "JSON", required: false, description: "At most 64 KB of JSON, recorded in the audit log as given: no secrets" }),
    timeoutSeconds: t.int({
      required: false,
      description: `Seconds until it times out, 1-${MAX_TASK_TIMEOUT_SECONDS} (default ${DEFAULT_TASK_TIMEOUT_SECONDS})`,
    }),
  }),
});

builder.queryField("tasks", (t) =>
  t.withAuth({ permission: "agent:read" }).field({
    type: TaskConnection,
    description: "The caller's tenant's tasks, newest first",
    args: {
      filter: t.arg({ type: TaskFilter, required: false }),
      first: t.arg.int({ required: true }),
      after: t.arg.string({ required: false }),
    },
    resolve: (_root, args, ctx) => {
      const tenantId = ctx.actor.tenantId;
      const filter = { agentId: args.filter?.agentId?.toString(), status: args.filter?.status, kind: args.filter?.kind };
      const page = pageArgs(taskCursor, args);
      return withTenant(ctx.deps.db, tenantId, (trx) => listTasks(trx, tenantId, filter, page));
    },
  }),
);

builder.queryField("task", (t) =>
  t.withAuth({ permission: "agent:read" }).field({
    type: Task,
    nullable: true,
    description: "One task of the caller's tenant (null for any other id)",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      // Another tenant's id reads as null too: nothing tells the two apart.
      const { id } = parseInput(TaskIdInput, { id: String(args.id) });
      const tenantId = ctx.actor.tenantId;
      return (await withTenant(ctx.deps.db, tenantId, (trx) => findTask(trx, tenantId, id))) ?? null;
    },
  }),
);

builder.queryField("pendingTasks", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: [Task],
    description: "For an enrolled agent polling instead of subscribing: its own pending tasks, oldest first",
    args: { first: t.arg.int({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const page = { first: checkPageSize(args.first), now: ctx.deps.now() };
      const { tenantId } = ctx.actor;
      const agentId = agentIdOf(ctx.actor);
      return (await withTenant(ctx.deps.db, tenantId, (trx) => pendingTasksOf(trx, tenantId, agentId, page))).rows;
    },
  }),
);

builder.mutationField("dispatchTask", (t) =>
  t.withAuth({ permission: "agent:write" }).field({
    type: Task,
    description: "Dispatch a task to one agent; it receives it over agentTasks or pendingTasks",
    args: { input: t.arg({ type: DispatchTaskInput, required: true }) },
    resolve: (_root, { input }, ctx) => dispatchTask(ctx.deps, ctx.actor, { ...input, agentId: String(input.agentId) }, ctx.meta),
  }),
);

builder.mutationField("claimTask", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: Task,
    description: "For the task's agent: take on a pending task. A task is claimed at most once; anything but pending is CONFLICT",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => claimTask(ctx.deps, ctx.actor, { id: String(args.id) }, ctx.meta),
  }),
);

builder.mutationField("reportTaskProgress", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: Task,
    description: "For the task's agent: how far it got on a claimed task (at most 16 KB of JSON and a message of 1 KB)",
    args: { id: t.arg.id({ required: true }), progress: t.arg({ type: "JSON", required: false }), message: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx) => reportTaskProgress(ctx.deps, ctx.actor, { id: String(args.id), progress: args.progress, message: args.message }, ctx.meta),
  }),
);

builder.mutationField("completeTask", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: Task,
    description: "For the task's agent: finish a claimed task with its result (at most 64 KB of JSON, recorded in the audit log)",
    args: { id: t.arg.id({ required: true }), result: t.arg({ type: "JSON", required: true }) },
    resolve: (_root, args, ctx) => completeTask(ctx.deps, ctx.actor, { id: String(args.id), result: args.result }, ctx.meta),
  }),
);

builder.mutationField("failTask", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: Task,
    description: "For the task's agent: give up on a claimed task with an error (at most 4 KB)",
    args: { id: t.arg.id({ required: true }), error: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => failTask(ctx.deps, ctx.actor, { id: String(args.id), error: args.error }, ctx.meta),
  }),
);

builder.subscriptionField("agentTasks", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: Task,
    description:
      "For an enrolled agent: first every task still pending for it, oldest first, then each task dispatched to it from then on. Never another agent's.",
    subscribe: (_root, _args, ctx) => watchAgentTasks(ctx.deps, ctx.actor),
    resolve: (task) => task,
  }),
);
