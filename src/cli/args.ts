import { parseArgs, type ParseArgsConfig } from "node:util";
import { BadInputError } from "../errors.ts";
import { UsageError } from "./command.ts";

// Reading the operator's command lines: strict flags, and every refusal a UsageError (exit 2, with the usage).

export type Values = Record<string, string | string[] | boolean | undefined>;

export function parse(args: string[], options: NonNullable<ParseArgsConfig["options"]>): Values {
  return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Values;
}

export function noArgs(command: string, args: string[]): void {
  if (args.length) throw new UsageError(`${command} takes no arguments (got ${args.join(" ")})`);
}

export function oneOf<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${choices.join(", ")} (got '${value}')`);
  return value as T;
}

/** An error of node:util parseArgs (unknown flag, missing value …): the command line's fault. */
export function isParseArgsError(error: unknown): boolean {
  return error instanceof Error && String((error as NodeJS.ErrnoException).code ?? "").startsWith("ERR_PARSE_ARGS");
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

export async function asUsage<T>(work: Promise<T>): Promise<T> {
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
