import SchemaBuilder from "@pothos/core";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { GraphQLError, Kind } from "graphql";
import type { Permission } from "../auth/permissions.ts";
import type { AuthenticatedContext, GraphQLContext } from "./context.ts";

export interface AuthScopes {
  /** Explicitly open to anonymous callers (the refresh token itself is the credential). */
  public: boolean;
  authenticated: boolean;
  permission: Permission;
  /** Any one of these (a field whose answer each of them narrows, such as tenantEvents). */
  anyPermission: readonly Permission[];
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: AuthScopes;
  // A field built with t.withAuth({ authenticated | permission }) resolves with the actor known.
  AuthContexts: { public: GraphQLContext; authenticated: AuthenticatedContext; permission: AuthenticatedContext; anyPermission: AuthenticatedContext };
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  plugins: [ScopeAuthPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    // Deny by default: a field without authScopes is refused by the schema test, not silently open.
    unauthorizedError: (_parent, context) =>
      context.actor
        ? new GraphQLError("not allowed", { extensions: { code: "FORBIDDEN" } })
        : new GraphQLError("authentication required", { extensions: { code: "UNAUTHENTICATED", http: { status: 401 } } }),
    authScopes: (context) => ({
      public: true,
      authenticated: async () => {
        if (context.actor) return true;
        await recordRefusal(context, "auth.failed", "missing");
        return false;
      },
      permission: async (permission: Permission) => {
        if (!context.actor) {
          await recordRefusal(context, "auth.failed", "missing", permission);
          return false;
        }
        if (context.actor.permissions.has(permission)) return true;
        await recordRefusal(context, "access.denied", "forbidden", permission);
        return false;
      },
      anyPermission: async (permissions: readonly Permission[]) => {
        if (!context.actor) {
          await recordRefusal(context, "auth.failed", "missing", permissions.join("|"));
          return false;
        }
        if (permissions.some((p) => context.actor!.permissions.has(p))) return true;
        await recordRefusal(context, "access.denied", "forbidden", permissions.join("|"));
        return false;
      },
    }),
  },
});

function recordRefusal(context: GraphQLContext, type: "auth.failed" | "access.denied", reason: string, action?: string) {
  const refusal = { tenantId: context.actor?.tenantId ?? null, actor: context.actor, reason, action, resource: "graphql", request: context.meta };
  return type === "auth.failed" ? context.deps.security.authFailed(refusal) : context.deps.security.accessDenied(refusal);
}

builder.scalarType("DateTime", {
  description: "An instant, as an ISO 8601 string in UTC",
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => parseDate(value),
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : null),
});

function parseDate(value: unknown): Date {
  const date = typeof value === "string" ? new Date(value) : new Date(NaN);
  if (typeof value !== "string" || Number.isNaN(date.getTime())) {
    throw new GraphQLError("DateTime must be an ISO 8601 string", { extensions: { code: "BAD_USER_INPUT" } });
  }
  return date;
}

builder.scalarType("JSON", {
  description: "Any JSON value",
  serialize: (value) => value,
  parseValue: (value) => value,
});

builder.queryType({});
builder.mutationType({});
// Subscriptions run over SSE (Yoga) and WebSocket (graphql-ws, src/http/websocket.ts) alike.
builder.subscriptionType({});
