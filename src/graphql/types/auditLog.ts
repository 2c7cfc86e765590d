import type { StoredEvent } from "../../store/events/types.ts";
import { readAuditLogPage } from "../../store/queries/auditLogQueries.ts";
import { builder } from "../builder.ts";
import { checkPageSize, decodeCursor, encodeCursor, PageInfo } from "../pagination.ts";

const CURSOR_KIND = "seq";

export const AuditEvent = builder.objectRef<StoredEvent>("AuditEvent").implement({
  description: "One event of the tenant's hash-chained log",
  fields: (t) => ({
    sequence: t.exposeInt("sequence", { description: "Dense, commit-ordered position in the tenant's log" }),
    cursor: t.string({ resolve: (e) => encodeCursor(CURSOR_KIND, e.sequence) }),
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

const AuditEventEdge = builder.objectRef<StoredEvent>("AuditEventEdge").implement({
  fields: (t) => ({
    cursor: t.string({ resolve: (e) => encodeCursor(CURSOR_KIND, e.sequence) }),
    node: t.field({ type: AuditEvent, resolve: (e) => e }),
  }),
});

const AuditEventConnection = builder
  .objectRef<{ events: StoredEvent[]; hasMore: boolean }>("AuditEventConnection")
  .implement({
    fields: (t) => ({
      edges: t.field({ type: [AuditEventEdge], resolve: (page) => page.events }),
      pageInfo: t.field({
        type: PageInfo,
        resolve: (page) => ({
          hasNextPage: page.hasMore,
          endCursor: page.events.length ? encodeCursor(CURSOR_KIND, page.events[page.events.length - 1]!.sequence) : null,
        }),
      }),
    }),
  });

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
  t.field({
    type: AuditEventConnection,
    description: "The caller's tenant log, with the hash fields an auditor verifies",
    args: {
      filter: t.arg({ type: AuditLogFilter, required: false }),
      first: t.arg.int({ required: true }),
      after: t.arg.string({ required: false }),
      order: t.arg({ type: AuditOrder, required: false, defaultValue: "OLDEST_FIRST" }),
    },
    authScopes: { permission: "audit:read" },
    resolve: (_root, args, ctx) =>
      readAuditLogPage(ctx.deps.db, ctx.actor!.tenantId, {
        filter: {
          types: args.filter?.types ?? undefined,
          actor: args.filter?.actor ?? undefined,
          streamId: args.filter?.streamId ?? undefined,
          from: args.filter?.from ?? undefined,
          to: args.filter?.to ?? undefined,
        },
        afterSequence: decodeCursor(CURSOR_KIND, args.after),
        limit: checkPageSize(args.first),
        newestFirst: args.order === "NEWEST_FIRST",
      }),
  }),
);
