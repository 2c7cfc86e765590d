import { createEnrollmentKey, pruneEnrollmentKeys, revokeEnrollmentKey, type CreatedEnrollmentKey } from "../../app/agents/enrollmentKeys.ts";
import { enrollAgent, type EnrolledAgent } from "../../app/agents/enrollAgent.ts";
import { agentHeartbeat } from "../../app/agents/heartbeat.ts";
import { AgentIdInput } from "../../app/agents/agentCommand.ts";
import { createAgent } from "../../app/agents/createAgent.ts";
import { deleteAgent } from "../../app/agents/deleteAgent.ts";
import { publishAgent } from "../../app/agents/publishAgent.ts";
import { updateAgent } from "../../app/agents/updateAgent.ts";
import { parseInput } from "../../domain/validation.ts";
import { NotFoundError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import { findAgentRow, listAgents, type AgentRow } from "../../store/queries/agentQueries.ts";
import { listEnrollmentKeys, type EnrollmentKeyRow } from "../../store/queries/enrollmentKeyQueries.ts";
import { builder } from "../builder.ts";
import { DEFAULT_HISTORY_SIZE, loadersOf, preloadAgentHistories } from "../loaders.ts";
import { checkPageSize, connectionType, pageArgs, timeIdCursor } from "../pagination.ts";
import { AuditEvent } from "./auditLog.ts";

/** enrollmentKeys takes no `first`: pruneEnrollmentKeys keeps the list short; this bounds it anyway. */
const MAX_ENROLLMENT_KEYS_LISTED = 500;

const AgentStatus = builder.enumType("AgentStatus", { values: ["draft", "published", "deleted"] as const });
const AgentConnection = builder.enumType("AgentConnection", { values: ["pending", "online", "offline"] as const });

export const Agent = builder.objectRef<AgentRow>("Agent").implement({
  fields: (t) => ({
    id: t.exposeID("agent_id"),
    name: t.exposeString("name"),
    type: t.exposeString("type"),
    version: t.exposeInt("version", { description: "Increments on every change; updateAgent checks it" }),
    config: t.field({ type: "JSON", resolve: (a) => a.config }),
    tags: t.stringList({ resolve: (a) => a.tags }),
    status: t.field({ type: AgentStatus, resolve: (a) => a.status }),
    connection: t.field({ type: AgentConnection, resolve: (a) => a.connection }),
    ephemeral: t.exposeBoolean("ephemeral"),
    host: t.field({ type: "JSON", nullable: true, description: "What the machine reported at enrollment", resolve: (a) => a.host }),
    lastSeenAt: t.field({ type: "DateTime", nullable: true, description: "The last heartbeat", resolve: (a) => a.last_seen_at }),
    enrolledAt: t.field({ type: "DateTime", nullable: true, resolve: (a) => a.enrolled_at }),
    createdBy: t.exposeString("created_by"),
    createdAt: t.field({ type: "DateTime", resolve: (a) => a.created_at }),
    updatedAt: t.field({ type: "DateTime", resolve: (a) => a.updated_at }),
    history: t.withAuth({ authenticated: true }).field({
      type: [AuditEvent],
      description: "The agent's own events, oldest first",
      args: { first: t.arg.int({ required: false, defaultValue: DEFAULT_HISTORY_SIZE }) },
      resolve: (a, args, ctx) => loadersOf(ctx).agentHistory.load(`${checkPageSize(args.first ?? DEFAULT_HISTORY_SIZE)}:${a.agent_id}`),
    }),
  }),
});

// Newest first, by (created_at, id): stable while agents are added.
const agentCursor = timeIdCursor<AgentRow>("agent", (a) => ({ at: a.created_at, id: a.agent_id }));
const AgentConnectionPage = connectionType({ connection: "AgentConnectionPage", edge: "AgentEdge" }, Agent, agentCursor);
const AgentFilter = builder.inputType("AgentFilter", {
  fields: (t) => ({ status: t.field({ type: AgentStatus, required: false }), type: t.string({ required: false }), tag: t.string({ required: false }) }),
});

builder.queryField("agents", (t) =>
  t.withAuth({ permission: "agent:read" }).field({
    type: AgentConnectionPage,
    args: { filter: t.arg({ type: AgentFilter, required: false }), first: t.arg.int({ required: true }), after: t.arg.string({ required: false }) },
    resolve: (_root, args, ctx, info) => {
      const tenantId = ctx.actor.tenantId;
      const page = pageArgs(agentCursor, args);
      return withTenant(ctx.deps.db, tenantId, async (trx) => {
        const agents = await listAgents(trx, tenantId, args.filter ?? {}, page);
        await preloadAgentHistories(ctx, info, trx, agents.rows);
        return agents;
      });
    },
  }),
);

builder.queryField("agent", (t) =>
  t.withAuth({ permission: "agent:read" }).field({
    type: Agent,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx, info) => {
      const { id } = parseInput(AgentIdInput, { id: String(args.id) });
      const tenantId = ctx.actor.tenantId;
      const agent = await withTenant(ctx.deps.db, tenantId, async (trx) => {
        const row = await findAgentRow(trx, tenantId, id);
        if (row) await preloadAgentHistories(ctx, info, trx, [row]);
        return row;
      });
      if (!agent) throw new NotFoundError("agent");
      return agent;
    },
  }),
);

const CreateAgentInput = builder.inputType("CreateAgentInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    type: t.string({ required: true }),
    config: t.field({ type: "JSON", required: false }),
    tags: t.stringList({ required: false }),
  }),
});
const UpdateAgentInput = builder.inputType("UpdateAgentInput", {
  fields: (t) => ({
    id: t.id({ required: true }),
    expectedVersion: t.int({ required: true, description: "The version the change was made on; a stale one is CONFLICT" }),
    name: t.string({ required: false }),
    type: t.string({ required: false }),
    config: t.field({ type: "JSON", required: false }),
    tags: t.stringList({ required: false }),
  }),
});

builder.mutationField("createAgent", (t) =>
  t.withAuth({ permission: "agent:write" }).field({
    type: Agent,
    args: { input: t.arg({ type: CreateAgentInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createAgent(
        ctx.deps,
        ctx.actor,
        { name: input.name, type: input.type, config: (input.config ?? {}) as Record<string, unknown>, tags: input.tags ?? [] },
        ctx.meta,
      ),
  }),
);
builder.mutationField("updateAgent", (t) =>
  t.withAuth({ permission: "agent:write" }).field({
    type: Agent,
    args: { input: t.arg({ type: UpdateAgentInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      updateAgent(
        ctx.deps,
        ctx.actor,
        {
          id: String(input.id),
          expectedVersion: input.expectedVersion,
          name: input.name ?? undefined,
          type: input.type ?? undefined,
          config: (input.config ?? undefined) as Record<string, unknown> | undefined,
          tags: input.tags ?? undefined,
        },
        ctx.meta,
      ),
  }),
);
builder.mutationField("publishAgent", (t) =>
  t.withAuth({ permission: "agent:manage" }).field({
    type: Agent,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => publishAgent(ctx.deps, ctx.actor, String(args.id), ctx.meta),
  }),
);
builder.mutationField("deleteAgent", (t) =>
  t.withAuth({ permission: "agent:manage" }).field({
    type: "Boolean",
    description: "The agent leaves the read side; its events stay",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => Boolean(await deleteAgent(ctx.deps, ctx.actor, String(args.id), ctx.meta)),
  }),
);

const EnrollmentKeyState = builder.enumType("EnrollmentKeyState", { values: ["active", "expired", "revoked", "used_up"] as const });
const EnrollmentKey = builder.objectRef<EnrollmentKeyRow>("EnrollmentKey").implement({
  description: "A key machines enroll with. The secret is shown once, at creation; this is its prefix and state.",
  fields: (t) => ({
    id: t.exposeID("key_id"),
    prefix: t.exposeString("prefix"),
    description: t.exposeString("description"),
    reusable: t.exposeBoolean("reusable"),
    ephemeral: t.exposeBoolean("ephemeral"),
    maxUses: t.exposeInt("max_uses", { nullable: true }),
    uses: t.exposeInt("uses"),
    tags: t.stringList({ resolve: (k) => k.tags }),
    agentId: t.exposeID("agent_id", { nullable: true }),
    expiresAt: t.field({ type: "DateTime", resolve: (k) => k.expires_at }),
    lastUsedAt: t.field({ type: "DateTime", nullable: true, resolve: (k) => k.last_used_at }),
    createdAt: t.field({ type: "DateTime", resolve: (k) => k.created_at }),
    state: t.field({
      type: EnrollmentKeyState,
      resolve: (k, _a, ctx) => {
        if (k.revoked_at) return "revoked";
        if (new Date(k.expires_at) <= ctx.deps.now()) return "expired";
        if (k.max_uses !== null && k.uses >= k.max_uses) return "used_up";
        return "active";
      },
    }),
  }),
});

const CreatedKey = builder.objectRef<CreatedEnrollmentKey>("CreatedEnrollmentKey").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    key: t.exposeString("key", { description: "kpe_<prefix>_<secret>: shown once" }),
    prefix: t.exposeString("prefix"),
    expiresAt: t.field({ type: "DateTime", resolve: (k) => k.expiresAt }),
  }),
});
const CreateEnrollmentKeyInput = builder.inputType("CreateEnrollmentKeyInput", {
  fields: (t) => ({
    description: t.string({ required: false }),
    reusable: t.boolean({ required: false }),
    ephemeral: t.boolean({ required: false, description: "Agents enrolled with it are removed 30 minutes after going offline" }),
    expiresIn: t.int({ required: false, description: "Seconds; default 3600" }),
    maxUses: t.int({ required: false }),
    tags: t.stringList({ required: false }),
    agentId: t.id({ required: false, description: "Enroll as this existing agent instead of a new one" }),
  }),
});

builder.mutationField("createEnrollmentKey", (t) =>
  t.withAuth({ permission: "agent:manage" }).field({
    type: CreatedKey,
    args: { input: t.arg({ type: CreateEnrollmentKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createEnrollmentKey(
        ctx.deps,
        ctx.actor,
        {
          description: input.description ?? undefined,
          reusable: input.reusable ?? undefined,
          ephemeral: input.ephemeral ?? undefined,
          expiresIn: input.expiresIn ?? undefined,
          maxUses: input.maxUses ?? undefined,
          tags: input.tags ?? undefined,
          agentId: input.agentId ? String(input.agentId) : undefined,
        },
        ctx.meta,
      ),
  }),
);
builder.queryField("enrollmentKeys", (t) =>
  t.withAuth({ permission: "agent:read" }).field({
    type: [EnrollmentKey],
    resolve: (_root, _args, ctx) =>
      withTenant(ctx.deps.db, ctx.actor.tenantId, (trx) => listEnrollmentKeys(trx, ctx.actor.tenantId, { limit: MAX_ENROLLMENT_KEYS_LISTED })),
  }),
);
builder.mutationField("revokeEnrollmentKey", (t) =>
  t.withAuth({ permission: "agent:manage" }).field({
    type: "Boolean",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => Boolean(await revokeEnrollmentKey(ctx.deps, ctx.actor, String(args.id), ctx.meta)),
  }),
);
builder.mutationField("pruneEnrollmentKeys", (t) =>
  t.withAuth({ permission: "agent:manage" }).field({
    type: "Int",
    description: "Removes expired, revoked and used-up keys from the list",
    resolve: (_root, _args, ctx) => pruneEnrollmentKeys(ctx.deps, ctx.actor, ctx.meta),
  }),
);

const Enrolled = builder.objectRef<EnrolledAgent>("EnrolledAgent").implement({
  description: "The agent's credential, shown once: store it (0600) and refresh it with refreshSession",
  fields: (t) => ({
    agentId: t.exposeID("agentId"),
    tenantId: t.exposeID("tenantId"),
    accessToken: t.exposeString("accessToken"),
    refreshToken: t.exposeString("refreshToken"),
    expiresAt: t.field({ type: "DateTime", resolve: (e) => e.expiresAt }),
    refreshExpiresAt: t.field({ type: "DateTime", resolve: (e) => e.refreshExpiresAt }),
  }),
});
const EnrollAgentInput = builder.inputType("EnrollAgentInput", {
  fields: (t) => ({
    key: t.string({ required: true }),
    hostname: t.string({ required: true }),
    os: t.string({ required: true }),
    arch: t.string({ required: true }),
    agentVersion: t.string({ required: true }),
  }),
});
builder.mutationField("enrollAgent", (t) =>
  t.field({
    type: Enrolled,
    description: "Public: the enrollment key is the credential (limited per source address)",
    args: { input: t.arg({ type: EnrollAgentInput, required: true }) },
    authScopes: { public: true },
    resolve: (_root, { input }, ctx) => enrollAgent(ctx.deps, input, ctx.meta),
  }),
);

const Heartbeat = builder.objectRef<{ agentId: string; connection: "online"; lastSeenAt: Date }>("AgentHeartbeat").implement({
  fields: (t) => ({
    agentId: t.exposeID("agentId"),
    connection: t.field({ type: AgentConnection, resolve: (h) => h.connection }),
    lastSeenAt: t.field({ type: "DateTime", resolve: (h) => h.lastSeenAt }),
  }),
});
const AgentHeartbeatInput = builder.inputType("AgentHeartbeatInput", {
  fields: (t) => ({ status: t.string({ required: false }), facts: t.field({ type: "JSON", required: false }) }),
});
builder.mutationField("agentHeartbeat", (t) =>
  t.withAuth({ permission: "agent:act" }).field({
    type: Heartbeat,
    args: { input: t.arg({ type: AgentHeartbeatInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      agentHeartbeat(
        ctx.deps,
        ctx.actor,
        { status: input.status ?? undefined, facts: (input.facts ?? undefined) as Record<string, unknown> | undefined },
        ctx.meta,
      ),
  }),
);
