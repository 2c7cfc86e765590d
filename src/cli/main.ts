import { ConfigError, loadConfig } from "../config.ts";
import { DomainError } from "../errors.ts";
import { DataDirInUseError } from "../store/dataDirLock.ts";
import { isParseArgsError } from "./args.ts";
import { defaultIo, UsageError, type CliIo, type CommandGroup } from "./command.ts";
import { agentGroup } from "./commands/agent.ts";
import { auditGroup } from "./commands/audit.ts";
import { consoleGroup } from "./commands/console.ts";
import { githubTokenGroup } from "./commands/githubToken.ts";
import { keysGroup } from "./commands/keys.ts";
import { migrateGroup } from "./commands/migrate.ts";
import { projectionsGroup } from "./commands/projections.ts";
import { serveGroup } from "./commands/serve.ts";
import { tenantGroup } from "./commands/tenant.ts";
import { tokenGroup } from "./commands/token.ts";

// The `keyplane` command: finds the command group named by the first word and reports what goes wrong.
// Each group (cli/commands/) parses its own command lines and brings its own lines of the usage text.

/** In the order `keyplane help` lists them. */
const GROUPS: readonly CommandGroup[] = [
  serveGroup,
  migrateGroup,
  tenantGroup,
  tokenGroup,
  consoleGroup,
  projectionsGroup,
  keysGroup,
  githubTokenGroup,
  agentGroup,
  auditGroup,
];

export const USAGE =
  "usage: keyplane <command> [options]\n\ncommands:\n" +
  GROUPS.map((group) => group.usage).join("") +
  "  help                                    show this text\n" +
  "\nThe database is PostgreSQL when DATABASE_URL is set, otherwise the embedded one in KEYPLANE_DATA_DIR (./data).\n" +
  "Exit status: 0 success, 1 failure, 2 usage or configuration error;\n" +
  GROUPS.map((group) => group.exitStatus ?? "").join("");

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
    const [name, ...args] = argv;
    if (name === undefined) throw new UsageError("no command given");
    const group = GROUPS.find((g) => g.name === name);
    if (!group) throw new UsageError(`unknown command: ${name}`);
    const command = group.parse(args);
    const config = loadConfig(env);
    return await command(config, io);
  } catch (error) {
    return reportError(error, io);
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
