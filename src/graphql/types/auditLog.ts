import { verifyAuditLog, type LogVerification } from "../../app/audit/verifyAuditLog.ts";
import type { CheckpointRecord } from "../../audit/exportFormat.ts";
import type { AuditProblem, ProblemKind } from "../../audit/verifyAuditRecords.ts";
import { refusePruned } from "../../app/retention/retainedLog.ts";
import { BadInputError } from "../../errors.ts";
import { readLatestCheckpoint } from "../../store/audit/checkpointQueries.ts";
import { readAuditLogPage } from "../../store/audit/readAuditLogPage.ts";
import { withTenant } from "../../store/db.ts";
import type { StoredEvent } from "../../store/events/types.ts";
import { builder } from "../builder.ts";
import { connectionType, pageArgs, sequenceCursor } from "../pagination.ts";

// By sequence; the same cursors as tenantEvents and the export's, so a client moves between them.
const logCursor = sequenceCursor<StoredEvent>("seq", (e) => e.sequence);

export const AuditEvent = builder.objectRef<StoredEvent>("AuditEvent").implement({
  description: "One event of the tenant's hash-chained log",
  fields: (t) => ({
    sequence: t.exposeInt("sequence", { description: "Dense, commit-ordered position in the tenant's log" }),
    cursor: t.string({ resolve: (e) => logCursor.encode(e) }),
    eventId: t.exposeID("eventId"),
    type: t.exposeString("type"),
    schemaVersion: t.exposeInt("schemaVersion"),
    streamType: t.exposeString("streamType"),
    streamId: t.exposeString("streamId"),
    streamVersion: t.exposeInt("streamVersion"),
    actor: t.string({ resolve: (e) => e.metadata.actor.subject }),
    occurredAt: t.field({ type: "DateTime", resolve: (e) => e.occurredAt }),
    recordedAt: t.field({ type: "DateTime", resolve: (e) => e.recordedAt }),
    data: t.field({ type: "JSON", resolve: (e) => e.data }),
    metadata: t.field({ type: "JSON", resolve: (e) => e.metadata }),
    contentHash: t.exposeString("contentHash"),
    chainHash: t.exposeString("chainHash"),
  }),
});

const AuditEventConnection = connectionType({ connection: "AuditEventConnection", edge: "AuditEventEdge" }, AuditEvent, logCursor);

const AuditLogFilter = builder.inputType("AuditLogFilter", {
  fields: (t) => ({
    types: t.stringList({ required: false, description: "Event types, e.g. tenant.created" }),
    actor: t.string({ required: false, description: "Subject of the actor" }),
    streamId: t.string({ required: false }),
    from: t.field({ type: "DateTime", required: false, description: "Occurred at or after" }),
    to: t.field({ type: "DateTime", required: false, description: "Occurred before" }),
  }),
});

const AuditOrder = builder.enumType("AuditOrder", { values: ["OLDEST_FIRST", "NEWEST_FIRST"] as const });

builder.queryField("auditLog", (t) =>
  t.withAuth({ permission: "audit:read" }).field({
    type: AuditEventConnection,
    description: "The caller's tenant log, with the hash fields an auditor verifies",
    args: {
      filter: t.arg({ type: AuditLogFilter, required: false }),
      first: t.arg.int({ required: true }),
      after: t.arg.string({ required: false }),
      order: t.arg({ type: AuditOrder, required: false, defaultValue: "OLDEST_FIRST" }),
    },
    resolve: async (_root, args, ctx) => {
      const page = pageArgs(logCursor, args);
      const read = await readAuditLogPage(ctx.deps.db, ctx.actor.tenantId, {
        filter: {
          types: args.filter?.types ?? undefined,
          actor: args.filter?.actor ?? undefined,
          streamId: args.filter?.streamId ?? undefined,
          from: args.filter?.from ?? undefined,
          to: args.filter?.to ?? undefined,
        },
        afterSequence: page.after,
        first: page.first,
        newestFirst: args.order === "NEWEST_FIRST",
      });
      // A cursor behind what retention kept: PRUNED with where the log starts, not a page that skips.
      if (page.after !== undefined) refusePruned(read.pruned ?? null, { what: "after", sequence: page.after + 1 });
      return read;
    },
  }),
);

// ---- verifyAuditLog: the database's own rows through the auditor's verifier -----------------

const PROBLEM_KINDS = [
  "modified",
  "deleted",
  "inserted",
  "reordered",
  "truncated",
  "checkpoint-signature",
  "checkpoint-mismatch",
  "checkpoint-link",
  "end-signature",
  "end-mismatch",
  "header",
  "malformed",
] as const satisfies readonly ProblemKind[];

const AuditProblemKind = builder.enumType("AuditProblemKind", {
  description: "What was found at the first bad sequence",
  values: Object.fromEntries(PROBLEM_KINDS.map((k) => [k.toUpperCase().replace(/-/g, "_"), { value: k }])) as Record<string, { value: ProblemKind }>,
});

const AuditAnchor = builder.enumType("AuditAnchor", {
  description: "Where the verified chain starts",
  values: { GENESIS: { value: "genesis" }, CHECKPOINT: { value: "checkpoint" } } as const,
});

const AuditProblemRef = builder.objectRef<AuditProblem>("AuditProblem").implement({
  fields: (t) => ({
    kind: t.field({ type: AuditProblemKind, resolve: (p) => p.kind }),
    sequence: t.int({ nullable: true, description: "The first sequence that is not as Keyplane wrote it", resolve: (p) => p.sequence }),
    message: t.exposeString("message"),
  }),
});

const AuditVerification = builder.objectRef<LogVerification>("AuditVerification").implement({
  description: "The tenant's log re-verified from its rows: content hashes, the hash chain, signed checkpoints and the head",
  fields: (t) => ({
    ok: t.exposeBoolean("ok"),
    startsFrom: t.field({ type: AuditAnchor, resolve: (r) => r.startsFrom ?? "genesis" }),
    anchorSequence: t.int({
      description: "0 for genesis, else the sequence of the signed checkpoint the chain starts from",
      resolve: (r) => r.anchorSequence ?? 0,
    }),
    fromSequence: t.exposeInt("fromSequence"),
    toSequence: t.exposeInt("toSequence"),
    lastSequence: t.int({ description: "The last sequence verified in order", resolve: (r) => r.lastSequence ?? 0 }),
    events: t.exposeInt("events", { description: "Events verified (from the anchor on)" }),
    checkpoints: t.exposeInt("checkpoints", { description: "Signed checkpoints verified after the anchor" }),
    problem: t.field({ type: AuditProblemRef, nullable: true, description: "The first problem; null when the log verifies", resolve: (r) => r.problem }),
  }),
});

builder.queryField("verifyAuditLog", (t) =>
  t.withAuth({ permission: "audit:read" }).field({
    type: AuditVerification,
    description: "Re-verifies the caller's tenant log between two sequences (the whole log by default)",
    args: {
      from: t.arg.int({ required: false, description: "First sequence (default 1)" }),
      to: t.arg.int({ required: false, description: "Last sequence (default: the end of the log)" }),
    },
    resolve: (_root, args, ctx) => verifyAuditLog({ db: ctx.deps.db, jwks: ctx.deps.verifier.jwks }, ctx.actor.tenantId, { from: args.from, to: args.to }),
  }),
);

// ---- auditCheckpoint: a signed checkpoint, for a receiver to verify what a log stream delivered ----

const AuditCheckpoint = builder.objectRef<CheckpointRecord>("AuditCheckpoint").implement({
  description:
    "A signed checkpoint of the tenant's hash chain: Keyplane's JWS (ES256, typ kp-audit-checkpoint+jws, verifiable with /.well-known/jwks.json) of {tenantId, sequence, chainHash, previousSignature, signedAt}. The other fields repeat what it signs",
  fields: (t) => ({
    sequence: t.exposeInt("sequence", { description: "The sequence whose chain hash is signed" }),
    chainHash: t.exposeString("chainHash", { description: "The chain hash after that sequence" }),
    previousSignature: t.exposeString("previousSignature", {
      nullable: true,
      description: "The signature part of the tenant's previous checkpoint's JWS (null for its first)",
    }),
    signedAt: t.field({ type: "DateTime", resolve: (c) => c.signedAt }),
    kid: t.exposeString("kid", { description: "The signing key's id in the JWKS" }),
    jws: t.exposeString("jws", { description: "The JWS compact serialization: the authority, the fields above repeat it" }),
  }),
});

builder.queryField("auditCheckpoint", (t) =>
  t.withAuth({ permission: "audit:read" }).field({
    type: AuditCheckpoint,
    nullable: true,
    description:
      "The caller's tenant's latest signed checkpoint at or before a sequence (the latest of all without one); null when none is signed yet. keyplane audit verify-stream checks delivered events against it",
    args: { atOrBefore: t.arg.int({ required: false, description: "The highest sequence the checkpoint may sign" }) },
    resolve: (_root, args, ctx) => {
      const atOrBefore = args.atOrBefore ?? undefined;
      if (atOrBefore !== undefined && atOrBefore < 0) throw new BadInputError("atOrBefore: must be a sequence of 0 or more", "atOrBefore");
      const { tenantId } = ctx.actor;
      return withTenant(ctx.deps.db, tenantId, (trx) => readLatestCheckpoint(trx, tenantId, atOrBefore));
    },
  }),
);
