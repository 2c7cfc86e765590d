import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { PLATFORM_TENANT, systemActor } from "../auth/actor.ts";
import { ConfigError, loadConfig, type Config } from "../config.ts";
import { roleSchema, tokenKindSchema, type Role, type TokenKind } from "../domain/eventDefinition.ts";
import { tierSchema, type Tier } from "../domain/tenant/events.ts";
import { BadInputError, ConflictError, DomainError, NotFoundError } from "../errors.ts";
import type { Keyplane } from "../main.ts";
import { DataDirInUseError, lockDataDir } from "../store/dataDirLock.ts";
import { parseAuditArgs } from "./auditArgs.ts";
import { defaultIo, UsageError, type CliIo, type Command } from "./command.ts";
import { progressReporter } from "./progress.ts";

// The server, the database drivers and the schema load only for a command that needs them, so a
// usage error or `keyplane help` answers at once.
const load = {
  main: () => import("../main.ts"),
  bootstrap: () => import("../app/bootstrap.ts"),
  credentials: () => import("../app/credentials.ts"),
  rebuild: () => import("../app/rebuildProjections.ts"),
  keyring: () => import("../crypto/keyring.ts"),
  rotateKeys: () => import("../app/installations/rotateEncryptionKeys.ts"),
  tenants: () => import("../app/tenants.ts"),
  db: () => import("../store/db.ts"),
  migrate: () => import("../store/migrate.ts"),
  tenantQueries: () => import("../store/queries/tenantQueries.ts"),
  githubToken: () => import("../tokenWriter/run.ts"),
  agentRun: () => import("../referenceAgent/run.ts"),
  audit: () => import("./auditCommands.ts"),
};

export const USAGE = `usage: keyplane <command> [options]

commands:
  serve                                   serve the GraphQL API (migrates the embedded database;
                                          on first start creates tenant 'default' and an admin token)
  migrate                                 apply pending migrations to DATABASE_URL (or the embedded database)
  tenant create --id ID --name NAME [--tier free|pro|enterprise]
  tenant list [--json]
  tenant set-tier --id ID --tier free|pro|enterprise
                                          move a tenant to another tier: its rate limits, cost
                                          budget and agent quotas follow from its next request
  token mint --tenant ID --role ROLE [--role ROLE...] --sub SUBJECT [--ttl SECONDS]
             [--scope SCOPE...] [--kind user|service|agent] [--refresh] [--json]
             roles: viewer, editor, admin, service; --role platform (alone, without --tenant)
             mints a platform-operator token
  projections rebuild                     replay the event log into fresh read tables
  keys generate                           print a new id:base64key entry for KEYPLANE_ENCRYPTION_KEYS
  keys rotate                             re-encrypt every stored secret under the first (current) key
                                          of KEYPLANE_ENCRYPTION_KEYS; resumable
  github-token --app NAME --output FILE [--installation-id N | --owner LOGIN | --repository OWNER/NAME]
               [--repositories NAME[,NAME...]...] [--permission NAME=read|write|admin...]
               [--keyplane-url URL --token-file FILE] [--watch] [--health-port PORT] [--timeout SECONDS]
                                          write a GitHub App installation token for a workload to FILE
                                          (the token alone, no trailing newline; mode 0600; atomic rename).
                                          With --keyplane-url it asks Keyplane with the service token in
                                          --token-file (re-read each time; recommended: no app key in the
                                          workload); without, it mints with the app key from
                                          GITHUB_APP_<NAME>_* or GITHUB_APPS_DIR/<name>/. --repository alone
                                          limits the token to that repository. --watch keeps FILE fresh
                                          (5-10 min before expiry, retries, never removes the last good
                                          token; exit 0 on SIGTERM); /healthz on --health-port is 200 while
                                          FILE's token has 5 min left. JSON log lines on stderr, never the token.
  agent run --server URL [--key kpe_... | --key-file FILE] [--state-dir DIR] [--heartbeat-seconds N]
            [--concurrency N] [--exit-on-unreachable]
                                          the reference agent: enrolls once with the key (credential kept in
                                          DIR, default ./.keyplane-agent, mode 0600; later runs reuse it and
                                          ignore --key), refreshes it, heartbeats (every 30 s), subscribes to
                                          its tasks and runs echo and http-check, reconnecting with backoff.
                                          JSON log lines on stderr, never a token or the key; exit 0 on SIGTERM.
  audit export --tenant ID --out FILE [--from ISO] [--to ISO] [--from-sequence N] [--to-sequence N]
               [--types TYPE[,TYPE...]...] [--format ndjson|csv]
                                          export the tenant's log, read from the database, as a verifiable file
                                          (--out - for stdout); recorded as an audit.exported event; progress on stderr
  audit verify FILE [--jwks FILE|URL] [--json] [--threads N]
                                          verify an export (NDJSON or CSV; - for stdin) with nothing but the file and
                                          Keyplane's JWKS (/.well-known/jwks.json): names the first modified, deleted,
                                          inserted or reordered sequence; exit 0 intact, 1 not. --threads: threads that
                                          check lines (default: the cores, at most 8; 0 or 1: one core)
  audit checkpoint [--tenant ID]          sign a checkpoint of the hash chain now (every tenant with new events)
  help                                    show this text

The database is PostgreSQL when DATABASE_URL is set, otherwise the embedded one in KEYPLANE_DATA_DIR (./data).
Exit status: 0 success, 1 failure, 2 usage or configuration error;
github-token also 3 refused by GitHub or Keyplane, 4 GitHub or Keyplane unreachable (network, timeout, 5xx);
agent run also 3 refused (bad enrollment key, dead credential: enroll again), 4 Keyplane unreachable at first
start (only with --exit-on-unreachable; by default it keeps retrying).
`;

/**
 * The `keyplane` command line. Returns the exit status: 0 success, 1 failure, 2 usage or configuration error.
 * Arguments are checked before the configuration is read and before any database is opened.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env, io: CliIo = defaultIo): Promise<number> {
  try {
    if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
      io.out(USAGE);
      return 0;
    }
    const command = parseCommand(argv);
    const config = loadConfig(env);
    return await command(config, io);
  } catch (error) {
    return reportError(error, io);
  }
}

function parseCommand(argv: string[]): Command {
  const [command, sub, ...rest] = argv;
  switch (command) {
    case "serve":
      noArgs("serve", argv.slice(1));
      return serve;
    case "migrate":
      noArgs("migrate", argv.slice(1));
      return migrate;
    case "tenant":
      if (sub === "create") return tenantCreate(rest);
      if (sub === "list") return tenantList(rest);
      if (sub === "set-tier") return tenantSetTier(rest);
      throw new UsageError(sub ? `unknown tenant command: ${sub}` : "tenant needs a command: create, list or set-tier");
    case "token":
      if (sub === "mint") return tokenMint(rest);
      throw new UsageError(sub ? `unknown token command: ${sub}` : "token needs a command: mint");
    case "projections":
      if (sub === "rebuild") {
        noArgs("projections rebuild", rest);
        return projectionsRebuild;
      }
      throw new UsageError(sub ? `unknown projections command: ${sub}` : "projections needs a command: rebuild");
    case "keys":
      if (sub === "generate" || sub === "rotate") {
        noArgs(`keys ${sub}`, rest);
        return sub === "generate" ? keysGenerate : keysRotate;
      }
      throw new UsageError(sub ? `unknown keys command: ${sub}` : "keys needs a command: generate or rotate");
    case "github-token":
      return async (config, io) => (await load.githubToken()).runGitHubToken(argv.slice(1), config, io);
    case "agent":
      if (sub === "run") return async (config, io) => (await load.agentRun()).runAgentRun(rest, config, io);
      throw new UsageError(sub ? `unknown agent command: ${sub}` : "agent needs a command: run");
    case "audit": {
      const audit = parseAuditArgs(sub, rest);
      return async (config, io) => {
        const commands = await load.audit();
        if (audit.command === "verify") return commands.runAuditVerify(audit, io);
        return withKeyplane(config, (kp) => (audit.command === "export" ? commands.runAuditExport(kp, audit, io) : commands.runAuditCheckpoint(kp, audit, io)));
      };
    }
    case undefined:
      throw new UsageError("no command given");
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}

function reportError(error: unknown, io: CliIo): number {
  if (error instanceof UsageError || isParseArgsError(error)) {
    io.err(`keyplane: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (error instanceof ConfigError) {
    io.err(`keyplane: ${error.message}\n`);
    return 2;
  }
  if (error instanceof DataDirInUseError || error instanceof DomainError) {
    io.err(`keyplane: ${error.message}\n`);
    return 1;
  }
  io.err(`keyplane: ${error instanceof Error ? error.message : String(error)}\n`);
  return 1;
}

function isParseArgsError(error: unknown): boolean {
  return error instanceof Error && String((error as NodeJS.ErrnoException).code ?? "").startsWith("ERR_PARSE_ARGS");
}

type Values = Record<string, string | string[] | boolean | undefined>;

function parse(args: string[], options: NonNullable<ParseArgsConfig["options"]>): Values {
  return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Values;
}

function noArgs(command: string, args: string[]): void {
  if (args.length) throw new UsageError(`${command} takes no arguments (got ${args.join(" ")})`);
}

function oneOf<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${choices.join(", ")} (got '${value}')`);
  return value as T;
}

// Input the domain refuses was typed on the command line: name the flag, not the field.
const FLAG_OF_FIELD: Record<string, string> = {
  id: "--id",
  name: "--name",
  tier: "--tier",
  tenantId: "--tenant",
  subject: "--sub",
  roles: "--role",
  scopes: "--scope",
  kind: "--kind",
  ttlSeconds: "--ttl",
};

async function asUsage<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof BadInputError) {
      const field = (error.field ?? "").split(".")[0] ?? "";
      const flag = FLAG_OF_FIELD[field];
      throw new UsageError(flag ? `invalid ${flag}: ${error.message.replace(/^[^:]*:\s*/, "")}` : error.message);
    }
    throw error;
  }
}

async function withKeyplane(config: Config, fn: (kp: Keyplane) => Promise<number>): Promise<number> {
  const { createKeyplane } = await load.main();
  const { pendingMigrations } = await load.migrate();
  // Command-line work logs only warnings: its output is for the operator.
  const kp = await createKeyplane({ ...config, logLevel: config.logLevel === "info" ? "warn" : config.logLevel });
  try {
    if (kp.database.backend === "pg" && !config.migrateOnStart) {
      const pending = await pendingMigrations(kp.database);
      if (pending.length) throw new Error(`the database has pending migrations (${pending.join(", ")}); run: keyplane migrate`);
    }
    return await fn(kp);
  } finally {
    await kp.close();
  }
}

async function serve(config: Config, io: CliIo): Promise<number> {
  const [{ createKeyplane }, { bootstrapDefaultTenant }] = await Promise.all([load.main(), load.bootstrap()]);
  const kp = await createKeyplane(config);
  // Requests and sockets have guards of their own (src/http/server.ts, websocket.ts); a promise that
  // still escapes one is a bug to log, not a reason to drop every tenant's connections.
  const escaped = (reason: unknown) => kp.deps.logger.error({ err: reason }, "unhandled rejection (Keyplane keeps serving)");
  process.on("unhandledRejection", escaped);
  let tokenFile: string | null;
  try {
    tokenFile = await bootstrapDefaultTenant(kp.deps);
  } catch (error) {
    // Several processes starting at once on one fresh PostgreSQL: another one created the tenant first.
    if (!(error instanceof ConflictError)) {
      await kp.close();
      throw error;
    }
    tokenFile = null;
  }
  let url: string;
  try {
    url = await kp.listen();
  } catch (error) {
    await kp.close();
    throw error;
  }
  const shown = url.replace("0.0.0.0", "localhost").replace("[::]", "localhost");
  io.err(`Keyplane is serving ${shown}/graphql (${kp.database.backend === "pglite" ? `embedded database in ${path.resolve(config.dataDir)}` : "PostgreSQL"})\n`);
  if (tokenFile) {
    io.err(`Created tenant 'default'; a one-time admin token is in ${tokenFile}\n`);
  } else {
    const existing = path.resolve(config.dataDir, "admin-token");
    if (existsSync(existing)) io.err(`The admin token written on first start is in ${existing}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  kp.deps.logger.info("shutting down");
  await kp.close();
  process.off("unhandledRejection", escaped);
  return 0;
}

async function migrate(config: Config, io: CliIo): Promise<number> {
  const embedded = !config.database.url;
  const [{ openDatabase }, { migrateToLatest }] = await Promise.all([load.db(), load.migrate()]);
  const unlock = embedded ? lockDataDir(config.dataDir) : () => {};
  try {
    const handle = await openDatabase({ url: config.database.url, poolMax: 1, dataDir: config.dataDir });
    try {
      const applied = await migrateToLatest(handle);
      const where = embedded ? `embedded database in ${path.resolve(config.dataDir)}` : "database";
      io.out(applied.length ? `applied: ${applied.join(", ")}\n${where} is current\n` : `${where} is current\n`);
      return 0;
    } finally {
      await handle.close();
    }
  } finally {
    unlock();
  }
}

function tenantCreate(args: string[]): Command {
  const v = parse(args, { id: { type: "string" }, name: { type: "string" }, tier: { type: "string" } });
  if (!v.id || !v.name) throw new UsageError("tenant create needs --id and --name");
  const tier: Tier = v.tier === undefined ? "free" : oneOf("--tier", v.tier as string, tierSchema.options);
  const input = { id: v.id as string, name: v.name as string, tier };
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { createTenant } = await load.tenants();
      await asUsage(createTenant(kp.deps, systemActor("cli"), input));
      io.out(`created tenant ${input.id} (${input.name}, ${tier})\n`);
      return 0;
    });
}

function tenantSetTier(args: string[]): Command {
  const v = parse(args, { id: { type: "string" }, tier: { type: "string" } });
  if (!v.id || !v.tier) throw new UsageError("tenant set-tier needs --id and --tier");
  const tier = oneOf("--tier", v.tier as string, tierSchema.options);
  const id = v.id as string;
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { changeTenantTier } = await load.tenants();
      // The same use case as the changeTenantTier mutation: tenant.tier_changed in the tenant's log.
      const changed = await asUsage(changeTenantTier(kp.deps, systemActor("cli"), id, { tier })).catch((error: unknown) => {
        throw error instanceof NotFoundError ? new Error(`no tenant ${id} (see: keyplane tenant list)`) : error;
      });
      io.out(changed ? `tenant ${id}: ${String(changed.data.from)} -> ${tier}\n` : `tenant ${id} is already on ${tier}\n`);
      return 0;
    });
}

function tenantList(args: string[]): Command {
  const v = parse(args, { json: { type: "boolean" } });
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { listAllTenants } = await load.tenantQueries();
      const rows = await listAllTenants(kp.deps.db);
      if (v.json) {
        const tenants = rows.map((r) => ({ id: r.tenant_id, name: r.name, tier: r.tier, status: r.status, createdAt: new Date(r.created_at).toISOString() }));
        io.out(JSON.stringify(tenants) + "\n");
        return 0;
      }
      const table = [["ID", "TIER", "STATUS", "NAME"], ...rows.map((r) => [r.tenant_id, r.tier, r.status, r.name])];
      const widths = [0, 1, 2].map((i) => Math.max(...table.map((row) => row[i]!.length)));
      io.out(table.map((row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join("  ")).join("\n") + "\n");
      if (!rows.length) io.err("no tenants yet (keyplane tenant create --id ID --name NAME)\n");
      return 0;
    });
}

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
      const [{ issueAccessToken }, { listAllTenants }] = await Promise.all([load.credentials(), load.tenantQueries()]);
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

async function projectionsRebuild(config: Config, io: CliIo): Promise<number> {
  return withKeyplane(config, async (kp) => {
    const { rebuildProjections } = await load.rebuild();
    const progress = progressReporter("rebuilding projections", io.err, Boolean(io.isTty));
    const started = Date.now();
    const { events } = await rebuildProjections(kp.deps.db, progress.update);
    progress.done();
    io.out(`rebuilt read tables from ${events} events in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return 0;
  });
}

async function keysGenerate(_config: Config, io: CliIo): Promise<number> {
  const { generateKeyEntry } = await load.keyring();
  io.out(`${generateKeyEntry()}\n`);
  io.err("Put it first in KEYPLANE_ENCRYPTION_KEYS (keep the old keys after it), restart, then run: keyplane keys rotate\n");
  return 0;
}

async function keysRotate(config: Config, io: CliIo): Promise<number> {
  return withKeyplane(config, async (kp) => {
    const { rotateEncryptionKeys } = await load.rotateKeys();
    const progress = progressReporter("re-encrypting installation secrets", io.err, Boolean(io.isTty));
    const result = await rotateEncryptionKeys(kp.deps, progress.update);
    progress.done();
    io.out(`re-encrypted ${result.installations} installation(s) and ${result.oauthStates} pending OAuth state(s) under key ${kp.deps.keyring.currentKeyId}\n`);
    return 0;
  });
}
