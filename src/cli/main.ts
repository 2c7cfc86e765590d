import { parseArgs, type ParseArgsConfig } from "node:util";
import { bootstrapDefaultTenant } from "../app/bootstrap.ts";
import { issueAccessToken } from "../app/credentials.ts";
import { rebuildProjections } from "../app/rebuildProjections.ts";
import { createTenant } from "../app/tenants.ts";
import { PLATFORM_TENANT, systemActor } from "../auth/actor.ts";
import { ConfigError, loadConfig, type Config } from "../config.ts";
import { DomainError } from "../errors.ts";
import { createKeyplane, type Keyplane } from "../main.ts";
import { DataDirInUseError } from "../store/dataDirLock.ts";
import { openDatabase } from "../store/db.ts";
import { migrateToLatest } from "../store/migrate.ts";
import { listAllTenants } from "../store/queries/tenantQueries.ts";
import { progressReporter } from "./progress.ts";

const USAGE = `usage: keyplane <command> [options]

commands:
  serve                                   serve the GraphQL API (migrates the embedded database)
  migrate                                 apply pending migrations to DATABASE_URL (or the embedded database)
  tenant create --id ID --name NAME [--tier free|pro|enterprise]
  tenant list
  token mint --tenant ID --role ROLE [--role ROLE...] --sub SUBJECT [--ttl SECONDS]
             [--scope SCOPE...] [--kind user|service] [--refresh] [--json]
             (--role platform mints a platform-operator token; --tenant is then not needed)
  projections rebuild                     replay the event log into fresh read tables
`;

export class UsageError extends Error {}

type Out = { out: (s: string) => void; err: (s: string) => void };

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env, io: Out = defaultIo): Promise<number> {
  const [command, sub, ...rest] = argv;
  try {
    const config = loadConfig(env);
    switch (command) {
      case "serve":
        return await serve(config, io);
      case "migrate":
        return await migrate(config, io);
      case "tenant":
        if (sub === "create") return await withKeyplane(config, (kp) => tenantCreate(kp, rest, io));
        if (sub === "list") return await withKeyplane(config, (kp) => tenantList(kp, io));
        throw new UsageError(`unknown tenant command: ${sub ?? "(none)"}`);
      case "token":
        if (sub === "mint") return await withKeyplane(config, (kp) => tokenMint(kp, rest, io));
        throw new UsageError(`unknown token command: ${sub ?? "(none)"}`);
      case "projections":
        if (sub === "rebuild") return await withKeyplane(config, (kp) => projectionsRebuild(kp, io));
        throw new UsageError(`unknown projections command: ${sub ?? "(none)"}`);
      case undefined:
      case "help":
      case "--help":
        io.out(USAGE);
        return command ? 0 : 2;
      default:
        throw new UsageError(`unknown command: ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`keyplane: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof DataDirInUseError || error instanceof DomainError) {
      io.err(`keyplane: ${error.message}\n`);
      return error instanceof ConfigError ? 2 : 1;
    }
    if (error instanceof Error && /parseArgs|ERR_PARSE_ARGS/.test(String((error as NodeJS.ErrnoException).code ?? ""))) {
      io.err(`keyplane: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    io.err(`keyplane: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

const defaultIo: Out = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

function parse(args: string[], options: ParseArgsConfig["options"]) {
  return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Record<string, string | string[] | boolean | undefined>;
}

async function withKeyplane(config: Config, fn: (kp: Keyplane) => Promise<number>): Promise<number> {
  // Command-line work logs only warnings: its output is for the operator.
  const kp = await createKeyplane({ ...config, logLevel: config.logLevel === "info" ? "warn" : config.logLevel });
  try {
    return await fn(kp);
  } finally {
    await kp.close();
  }
}

async function serve(config: Config, io: Out): Promise<number> {
  const kp = await createKeyplane(config);
  const tokenFile = await bootstrapDefaultTenant(kp.deps);
  const url = await kp.listen();
  const shown = url.replace("0.0.0.0", "localhost").replace("[::]", "localhost");
  io.err(`Keyplane is serving ${shown}/graphql (${kp.database.backend === "pglite" ? `embedded database in ${config.dataDir}` : "PostgreSQL"})\n`);
  if (tokenFile) io.err(`A one-time admin token for tenant 'default' is in ${tokenFile}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  kp.deps.logger.info("shutting down");
  await kp.close();
  return 0;
}

async function migrate(config: Config, io: Out): Promise<number> {
  if (!config.database.url) {
    // The embedded database migrates on open.
    return withKeyplane(config, async () => {
      io.out("embedded database is current\n");
      return 0;
    });
  }
  const handle = await openDatabase({ url: config.database.url });
  try {
    const applied = await migrateToLatest(handle);
    io.out(applied.length ? `applied: ${applied.join(", ")}\n` : "database is current\n");
    return 0;
  } finally {
    await handle.close();
  }
}

async function tenantCreate(kp: Keyplane, args: string[], io: Out): Promise<number> {
  const v = parse(args, { id: { type: "string" }, name: { type: "string" }, tier: { type: "string" } });
  if (!v.id || !v.name) throw new UsageError("tenant create needs --id and --name");
  const tier = (v.tier as string | undefined) ?? "free";
  await createTenant(kp.deps, systemActor("cli"), { id: v.id as string, name: v.name as string, tier: tier as "free" });
  io.out(`created tenant ${v.id} (${tier})\n`);
  return 0;
}

async function tenantList(kp: Keyplane, io: Out): Promise<number> {
  const rows = await listAllTenants(kp.deps.db);
  io.out(["ID\tTIER\tSTATUS\tNAME", ...rows.map((r) => `${r.tenant_id}\t${r.tier}\t${r.status}\t${r.name}`)].join("\n") + "\n");
  return 0;
}

async function tokenMint(kp: Keyplane, args: string[], io: Out): Promise<number> {
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
  const roles = (v.role as string[] | undefined) ?? [];
  if (!roles.length || !v.sub) throw new UsageError("token mint needs --role and --sub");
  const platform = roles.includes("platform");
  const tenantId = platform ? PLATFORM_TENANT : (v.tenant as string | undefined);
  if (!tenantId) throw new UsageError("token mint needs --tenant");
  if (!platform && !(await listAllTenants(kp.deps.db)).some((t) => t.tenant_id === tenantId)) {
    throw new UsageError(`no tenant ${tenantId} (see: keyplane tenant list)`);
  }
  const ttl = v.ttl === undefined ? undefined : Number(v.ttl);
  if (ttl !== undefined && !Number.isInteger(ttl)) throw new UsageError("--ttl is a number of seconds");
  const kind = (v.kind as string | undefined) ?? (platform ? "platform" : roles.includes("service") ? "service" : "user");
  const issued = await issueAccessToken(kp.deps, systemActor("cli"), {
    tenantId,
    subject: v.sub as string,
    kind: kind as "user",
    roles: roles as ["viewer"],
    scopes: (v.scope as string[] | undefined) ?? [],
    ttlSeconds: ttl,
    refreshable: Boolean(v.refresh),
    issuedVia: "cli",
  });
  io.out(v.json ? JSON.stringify(issued) + "\n" : issued.accessToken + "\n");
  return 0;
}

async function projectionsRebuild(kp: Keyplane, io: Out): Promise<number> {
  const progress = progressReporter("rebuilding projections", io.err);
  const { events } = await rebuildProjections(kp.deps.db, progress.update);
  progress.done();
  io.out(`rebuilt read tables from ${events} events\n`);
  return 0;
}

