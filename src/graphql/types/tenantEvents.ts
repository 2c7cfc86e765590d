import { LIVE_EVENT_PERMISSIONS, liveEventTypes, receivesEveryEvent } from "../../auth/liveEventTypes.ts";
import { retainedStart } from "../../app/retention/retainedLog.ts";
import { BadInputError, ForbiddenError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import { builder } from "../builder.ts";
import { decodeCursor } from "../pagination.ts";
import { AuditEvent } from "./auditLog.ts";

const MAX_TYPES = 50;
const EVENT_TYPE = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;

builder.subscriptionField("tenantEvents", (t) =>
  // event:subscribe: every event; the areas' readers: the events of the areas they read (liveEventTypes.ts).
  t.withAuth({ anyPermission: LIVE_EVENT_PERMISSIONS }).field({
    type: AuditEvent,
    description:
      "The caller's tenant log as it grows (with event:subscribe every event, otherwise the events of the areas the caller may read: `me.liveEventTypes`): first every event after `after` (a cursor from this subscription, `auditLog` or an export), then each new event as it commits, in sequence order, with no gap and no duplicate. Without `after`, only events from now on. Reconnect with the last cursor received to get exactly what was missed; a cursor behind what retention kept is PRUNED (extensions: firstAvailableSequence, anchor). Ends with SLOW_CONSUMER when the client falls too far behind.",
    args: {
      after: t.arg.string({ required: false }),
      types: t.arg.stringList({ required: false, description: `Only these event types (at most ${MAX_TYPES}), e.g. agent.created` }),
    },
    subscribe: async (_root, args, ctx) => {
      const types = args.types ?? undefined;
      if (types && (types.length > MAX_TYPES || types.some((type) => !EVENT_TYPE.test(type)))) {
        throw new BadInputError(`types: at most ${MAX_TYPES} event types such as agent.created`, "types");
      }
      const after = decodeCursor("seq", args.after);
      const tenantId = ctx.actor.tenantId;
      // Resuming from a cursor retention has pruned past: PRUNED with where the log starts, not a silent gap.
      if (after !== undefined) await withTenant(ctx.deps.db, tenantId, (trx) => retainedStart(trx, tenantId, { what: "after", sequence: after + 1 }));
      return ctx.deps.events.watch(tenantId, { after: after ?? "latest", types: narrowed(ctx.actor.permissions, types) });
    },
    resolve: (event) => event,
  }),
);

/** The types asked for, within what the caller may receive; FORBIDDEN names a type outside it. */
function narrowed(permissions: Parameters<typeof liveEventTypes>[0], types: readonly string[] | undefined): readonly string[] | undefined {
  if (receivesEveryEvent(permissions)) return types;
  const readable = liveEventTypes(permissions);
  if (!types?.length) return readable;
  const allowed = new Set(readable);
  const refused = types.filter((type) => !allowed.has(type));
  if (refused.length > 0) throw new ForbiddenError(`types: ${refused.join(", ")} not among the events your role receives live (me.liveEventTypes)`);
  return types;
}
