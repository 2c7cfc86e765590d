import { PLATFORM_TENANT, systemActor } from "../../auth/actor.ts";
import { roleSchema, tokenKindSchema, type Role, type TokenKind } from "../../domain/eventDefinition.ts";
import { asUsage, oneOf, parse } from "../args.ts";
import { UsageError, type Command, type CommandGroup } from "../command.ts";
import { withKeyplane } from "../withKeyplane.ts";

export const tokenGroup: CommandGroup = {
  name: "token",
  usage: `  token mint --tenant ID --role ROLE [--role ROLE...] --sub SUBJECT [--ttl SECONDS]
             [--scope SCOPE...] [--kind user|service|agent] [--refresh] [--json]
             roles: viewer, editor, admin, service; --role platform (alone, without --tenant)
             mints a platform-operator token
`,
  parse([sub, ...rest]) {
    if (sub === "mint") return tokenMint(rest);
    throw new UsageError(sub ? `unknown token command: ${sub}` : "token needs a command: mint");
  },
};

function tokenMint(args: string[]): Command {
  const v = parse(args, {
    tenant: { type: "string" },
    role: { type: "string", multiple: true },
    sub: { type: "string" },
    ttl: { type: "string" },
    scope: { type: "string", multiple: true },
    kind: { type: "string" },
    refresh: { type: "boolean" },
    json: { type: "boolean" },
  });
  const roles = ((v.role as string[] | undefined) ?? []).map((r) => oneOf("--role", r, roleSchema.options));
  if (!roles.length) throw new UsageError("token mint needs --role");
  if (!v.sub) throw new UsageError("token mint needs --sub");
  const platform = roles.includes("platform");
  if (platform && roles.length > 1) throw new UsageError("--role platform cannot be combined with other roles");
  if (platform && v.tenant !== undefined) throw new UsageError("--role platform mints a platform-operator token: leave out --tenant");
  const tenantId = platform ? PLATFORM_TENANT : (v.tenant as string | undefined);
  if (!tenantId) throw new UsageError("token mint needs --tenant (or --role platform)");
  let ttl: number | undefined;
  if (v.ttl !== undefined) {
    ttl = Number(v.ttl);
    if (!/^\d+$/.test(v.ttl as string) || !Number.isSafeInteger(ttl) || ttl <= 0) throw new UsageError(`--ttl is a whole number of seconds (got '${v.ttl}')`);
  }
  const defaultKind: TokenKind = platform ? "platform" : roles.includes("service") ? "service" : "user";
  const kind: TokenKind = v.kind === undefined ? defaultKind : oneOf("--kind", v.kind as string, tokenKindSchema.options);
  if (platform !== (kind === "platform")) throw new UsageError("--kind platform goes with --role platform only");
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const [{ issueAccessToken }, { listAllTenants }] = await Promise.all([
        import("../../app/sessions/issueAccessToken.ts"),
        import("../../store/queries/tenantQueries.ts"),
      ]);
      if (!platform && !(await listAllTenants(kp.deps.db)).some((t) => t.tenant_id === tenantId)) {
        throw new Error(`no tenant ${tenantId} (see: keyplane tenant list)`);
      }
      const issued = await asUsage(
        issueAccessToken(kp.deps, systemActor("cli"), {
          tenantId,
          subject: v.sub as string,
          kind,
          roles: roles as Role[],
          scopes: (v.scope as string[] | undefined) ?? [],
          ttlSeconds: ttl,
          refreshable: Boolean(v.refresh),
          issuedVia: "cli",
        }),
      );
      io.out(v.json ? JSON.stringify(issued) + "\n" : issued.accessToken + "\n");
      return 0;
    });
}
