import { endSession } from "../../app/sessions/endSession.ts";
import { issueAccessToken } from "../../app/sessions/issueAccessToken.ts";
import { refreshSession } from "../../app/sessions/refreshSession.ts";
import { redeemSignInCode } from "../../app/sessions/signInCode.ts";
import { revokeAccessToken } from "../../app/sessions/revokeAccessToken.ts";
import { startSession } from "../../app/sessions/startSession.ts";
import type { IssuedTokens } from "../../app/sessions/tokenPair.ts";
import { builder } from "../builder.ts";

const IssuedToken = builder.objectRef<IssuedTokens>("IssuedToken").implement({
  description: "Shown once: Keyplane keeps only the token id",
  fields: (t) => ({
    accessToken: t.exposeString("accessToken"),
    tokenId: t.exposeID("tokenId"),
    expiresAt: t.field({ type: "DateTime", resolve: (i) => i.expiresAt }),
    refreshToken: t.exposeString("refreshToken", { nullable: true }),
    refreshExpiresAt: t.field({ type: "DateTime", nullable: true, resolve: (i) => i.refreshExpiresAt ?? null }),
  }),
});

const IssueServiceTokenInput = builder.inputType("IssueServiceTokenInput", {
  fields: (t) => ({
    subject: t.string({ required: true, description: "Name of the service, e.g. ci-runner" }),
    scopes: t.stringList({ required: false, description: "Narrow the token to these permissions" }),
    ttlSeconds: t.int({ required: false, description: "Default 24 hours" }),
    refreshable: t.boolean({ required: false, description: "Also return a rotating refresh token" }),
  }),
});

builder.mutationField("issueServiceToken", (t) =>
  t.withAuth({ permission: "token:issue" }).field({
    type: IssuedToken,
    args: { input: t.arg({ type: IssueServiceTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      issueAccessToken(
        ctx.deps,
        ctx.actor,
        {
          tenantId: ctx.actor.tenantId,
          subject: input.subject,
          kind: "service",
          roles: ["service"],
          scopes: input.scopes ?? [],
          ttlSeconds: input.ttlSeconds ?? undefined,
          refreshable: input.refreshable ?? false,
          issuedVia: "api",
        },
        ctx.meta,
      ),
  }),
);

const RevokedToken = builder.objectRef<{ tokenId: string; revokedAt: Date }>("RevokedToken").implement({
  fields: (t) => ({
    tokenId: t.exposeID("tokenId"),
    revokedAt: t.field({ type: "DateTime", resolve: (r) => r.revokedAt }),
  }),
});

builder.mutationField("revokeAccessToken", (t) =>
  t.withAuth({ permission: "token:revoke" }).field({
    type: RevokedToken,
    description: "Refused from the next request on, by every Keyplane process",
    args: { tokenId: t.arg.id({ required: true, description: "The token's jti" }) },
    resolve: (_root, { tokenId }, ctx) => revokeAccessToken(ctx.deps, ctx.actor, { tokenId: String(tokenId) }, ctx.meta),
  }),
);

builder.mutationField("refreshSession", (t) =>
  t.field({
    type: IssuedToken,
    description: "Spends a refresh token for a new pair; a reused refresh token revokes its whole family",
    args: { refreshToken: t.arg.string({ required: true }) },
    authScopes: { public: true },
    resolve: (_root, { refreshToken }, ctx) => refreshSession(ctx.deps, refreshToken, ctx.meta),
  }),
);

builder.mutationField("redeemSignInCode", (t) =>
  t.field({
    type: IssuedToken,
    description:
      "Exchanges a one-time sign-in code (`keyplane console link`) for a session of the principal it names: a 15-minute access token and a rotating refresh token. A code works once and for a few minutes",
    args: { code: t.arg.string({ required: true }) },
    authScopes: { public: true },
    resolve: (_root, { code }, ctx) => redeemSignInCode(ctx.deps, code, ctx.meta),
  }),
);

// The console's sign-in and sign-out: any signed-in principal, for itself only (no argument names anyone else).
builder.mutationField("startSession", (t) =>
  t.withAuth({ authenticated: true }).field({
    type: IssuedToken,
    description:
      "Exchanges the token presented for a session of the same principal (same tenant, subject, kind, roles and scopes): a 15-minute access token and a rotating refresh token",
    resolve: (_root, _args, ctx) => startSession(ctx.deps, ctx.actor, ctx.meta),
  }),
);

builder.mutationField("endSession", (t) =>
  t.withAuth({ authenticated: true }).field({
    type: "Boolean",
    description:
      "Signs out: revokes the session of the token presented (its refresh-token family and the access token itself); true when something was revoked",
    resolve: (_root, _args, ctx) => endSession(ctx.deps, ctx.actor, ctx.meta),
  }),
);
