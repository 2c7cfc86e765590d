import type { Actor } from "../../auth/actor.ts";
import { liveEventTypes } from "../../auth/liveEventTypes.ts";
import { builder } from "../builder.ts";

const Viewer = builder.objectRef<Actor>("Viewer").implement({
  description: "The principal behind the token of this request",
  fields: (t) => ({
    subject: t.exposeString("subject"),
    tenantId: t.exposeString("tenantId"),
    kind: t.exposeString("kind"),
    roles: t.exposeStringList("roles"),
    scopes: t.exposeStringList("scopes"),
    permissions: t.stringList({ resolve: (actor) => [...actor.permissions].sort() }),
    liveEventTypes: t.stringList({
      description: "The event types tenantEvents delivers to this principal: all with event:subscribe, else those of the areas it may read",
      resolve: (actor) => liveEventTypes(actor.permissions),
    }),
    tokenId: t.exposeString("tokenId"),
    expiresAt: t.field({ type: "DateTime", resolve: (actor) => actor.expiresAt }),
  }),
});

builder.queryField("me", (t) =>
  t.withAuth({ authenticated: true }).field({
    type: Viewer,
    resolve: (_root, _args, ctx) => ctx.actor,
  }),
);
