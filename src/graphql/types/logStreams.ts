import {
  createLogStream,
  deleteLogStream,
  listLogStreams,
  pauseLogStream,
  replayLogStream,
  resumeLogStream,
  rotateLogStreamSecret,
  updateLogStream,
  type LogStreamWithSecret,
} from "../../app/logStreams/manageLogStreams.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import type { LogStreamRow } from "../../store/queries/logStreamQueries.ts";
import { builder } from "../builder.ts";

const LogStreamKind = builder.enumType("LogStreamKind", {
  description: "webhook: an HTTPS endpoint signed per Standard Webhooks; splunk: an HTTP Event Collector; datadog: Datadog Logs",
  values: ["webhook", "splunk", "datadog"] as const,
});
const LogStreamState = builder.enumType("LogStreamState", { values: ["active", "paused"] as const });
const LogStreamHealth = builder.enumType("LogStreamHealth", {
  description:
    "pending: nothing delivered yet since created or changed; healthy: the last delivery succeeded; degraded: deliveries fail and are retried; error: the receiver refused (401, 403, 404…), delivery stopped until the stream is updated or resumed",
  values: ["pending", "healthy", "degraded", "error"] as const,
});

const LogStreamFilter = builder.objectRef<LogStreamRow["filter"]>("LogStreamFilter").implement({
  fields: (t) => ({
    types: t.stringList({ nullable: true, description: "Only these event types (null: every type)", resolve: (f) => f.types ?? null }),
    securityOnly: t.exposeBoolean("securityOnly", { description: "Only security events (auth.failed, access.denied)" }),
  }),
});

const LogStream = builder.objectRef<LogStreamRow>("LogStream").implement({
  description: "Where the tenant's events are delivered, in order, at least once. Never its secret.",
  fields: (t) => ({
    id: t.exposeID("logStreamId"),
    name: t.exposeString("name"),
    kind: t.field({ type: LogStreamKind, resolve: (s) => s.kind }),
    destination: t.exposeString("destination", { description: "scheme://host/path: never the query string or credentials" }),
    settings: t.field({ type: "JSON", description: "Splunk: index, source, sourcetype; Datadog: site, service, ddsource, ddtags", resolve: (s) => s.settings }),
    filter: t.field({ type: LogStreamFilter, resolve: (s) => s.filter }),
    secretFingerprint: t.exposeString("secretFingerprint"),
    state: t.field({ type: LogStreamState, resolve: (s) => (s.state === "paused" ? "paused" : "active") }),
    health: t.field({ type: LogStreamHealth, resolve: (s) => s.health }),
    lastError: t.exposeString("lastError", { nullable: true, description: "The receiver's answer (never a secret of ours)" }),
    deliveredSequence: t.exposeInt("deliveredSequence", { description: "Every event up to this sequence was delivered (or left out by the filter)" }),
    lagEvents: t.int({ description: "Events of the tenant's log not yet delivered", resolve: (s) => Math.max(0, s.headSequence - s.deliveredSequence) }),
    lagSeconds: t.float({
      description: "How long ago the oldest event not yet delivered occurred (0: caught up)",
      resolve: (s, _args, ctx) => (s.oldestUndeliveredAt ? Math.max(0, (ctx.deps.now().getTime() - s.oldestUndeliveredAt.getTime()) / 1000) : 0),
    }),
    failedAttempts: t.exposeInt("attempts", { description: "Failed attempts at the delivery now due (0 after a success)" }),
    lastSuccessAt: t.field({ type: "DateTime", nullable: true, resolve: (s) => s.lastSuccessAt }),
    lastAttemptAt: t.field({ type: "DateTime", nullable: true, resolve: (s) => s.lastAttemptAt }),
    nextAttemptAt: t.field({ type: "DateTime", nullable: true, description: "When a failed delivery is tried again", resolve: (s) => s.nextAttemptAt }),
    createdBy: t.exposeString("createdBy"),
    createdAt: t.field({ type: "DateTime", resolve: (s) => s.createdAt }),
    updatedAt: t.field({ type: "DateTime", resolve: (s) => s.updatedAt }),
  }),
});

const LogStreamWithSecretRef = builder.objectRef<LogStreamWithSecret>("LogStreamWithSecret").implement({
  fields: (t) => ({
    logStream: t.field({ type: LogStream, resolve: (r) => r.logStream }),
    secret: t.exposeString("secret", {
      nullable: true,
      description: "A webhook's signing secret (whsec_…): shown this once, keep it in the receiver. Null for Splunk and Datadog (their secret is yours).",
    }),
  }),
});

const LogStreamFilterInput = builder.inputType("LogStreamFilterInput", {
  fields: (t) => ({
    types: t.stringList({ required: false, description: 'Only these event types, e.g. ["auth.failed", "token.issued"]' }),
    securityOnly: t.boolean({ required: false, description: "Only security events (auth.failed, access.denied)" }),
  }),
});

const CreateLogStreamInput = builder.inputType("CreateLogStreamInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    kind: t.field({ type: LogStreamKind, required: true }),
    url: t.string({
      required: false,
      description: "https only. Webhook: the endpoint; Splunk: the HEC base (https://splunk.example.com:8088); Datadog: optional (the site's intake)",
    }),
    secret: t.string({ required: false, description: "Splunk HEC token or Datadog API key (required for them); a webhook's is generated" }),
    settings: t.field({
      type: "JSON",
      required: false,
      description: 'Splunk: {"index", "source", "sourcetype"}; Datadog: {"site", "service", "ddsource", "ddtags"}',
    }),
    filter: t.field({ type: LogStreamFilterInput, required: false }),
  }),
});

const UpdateLogStreamInput = builder.inputType("UpdateLogStreamInput", {
  description: "What to change; what is left out stays. A new URL is checked again.",
  fields: (t) => ({
    name: t.string({ required: false }),
    url: t.string({ required: false }),
    secret: t.string({ required: false, description: "A new Splunk HEC token or Datadog API key (a webhook's: rotateLogStreamSecret)" }),
    settings: t.field({ type: "JSON", required: false, description: "Replaces the settings" }),
    filter: t.field({ type: LogStreamFilterInput, required: false, description: "Replaces the filter" }),
  }),
});

/** Ids are UUIDs: anything longer is no stream's. */
const idOf = (id: string | number) => truncateWellFormed(String(id), 64);

builder.queryField("logStreams", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: [LogStream],
    description: "The tenant's log streams with their health and lag, oldest first",
    resolve: (_root, _args, ctx) => listLogStreams(ctx.deps, ctx.actor),
  }),
);

builder.queryField("logStream", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: LogStream,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await listLogStreams(ctx.deps, ctx.actor, idOf(args.id)))[0] ?? null,
  }),
);

builder.mutationField("createLogStream", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: LogStreamWithSecretRef,
    description: "Starts delivering the tenant's events from this one on (replayLogStream delivers earlier ones)",
    args: { input: t.arg({ type: CreateLogStreamInput, required: true }) },
    resolve: (_root, { input }, ctx) => createLogStream(ctx.deps, ctx.actor, input, ctx.meta),
  }),
);

builder.mutationField("updateLogStream", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: LogStream,
    description: "Changes a stream; a stream the receiver refused is tried again at once",
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateLogStreamInput, required: true }) },
    resolve: (_root, args, ctx) => updateLogStream(ctx.deps, ctx.actor, idOf(args.id), args.input, ctx.meta),
  }),
);

builder.mutationField("rotateLogStreamSecret", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: LogStreamWithSecretRef,
    description: "A webhook's new signing secret (shown once); the previous one signs beside it for overlapSeconds (default a day)",
    args: { id: t.arg.id({ required: true }), overlapSeconds: t.arg.int({ required: false }) },
    resolve: (_root, args, ctx) => rotateLogStreamSecret(ctx.deps, ctx.actor, idOf(args.id), args.overlapSeconds ?? 86_400, ctx.meta),
  }),
);

for (const [name, run, description] of [
  ["pauseLogStream", pauseLogStream, "Stops delivering; events keep their place and are delivered once resumed"],
  ["resumeLogStream", resumeLogStream, "Resumes a paused stream, or retries at once one the receiver refused"],
] as const) {
  builder.mutationField(name, (t) =>
    t.withAuth({ permission: "log-stream:manage" }).field({
      type: LogStream,
      description,
      args: { id: t.arg.id({ required: true }) },
      resolve: (_root, args, ctx) => run(ctx.deps, ctx.actor, idOf(args.id), ctx.meta),
    }),
  );
}

builder.mutationField("replayLogStream", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: LogStream,
    description: "Delivers again from this sequence of the tenant's log on (receivers deduplicate by event id)",
    args: { id: t.arg.id({ required: true }), from: t.arg.int({ required: true }) },
    resolve: (_root, args, ctx) => replayLogStream(ctx.deps, ctx.actor, idOf(args.id), args.from, ctx.meta),
  }),
);

builder.mutationField("deleteLogStream", (t) =>
  t.withAuth({ permission: "log-stream:manage" }).field({
    type: "Boolean",
    description: "Stops delivering and forgets the destination's URL and secret",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => deleteLogStream(ctx.deps, ctx.actor, idOf(args.id), ctx.meta),
  }),
);
