import type { Actor } from "../../auth/actor.ts";
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
