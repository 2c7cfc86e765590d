import type { Config } from "../config.ts";

// What every `keyplane` command shares with the dispatcher (cli/main.ts), kept apart from it so that a
// command never imports the dispatcher that imports it.

/** A command line that cannot be run as typed: exit 2, with the usage text. */
export class UsageError extends Error {}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Whether err is a terminal (progress is then drawn on one rewritten line). */
  isTty?: boolean;
}

export const defaultIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  get isTty() {
    return Boolean(process.stderr.isTTY);
  },
};

/** A parsed command line: run() needs the configuration, which is read only once the arguments are valid. */
export type Command = (config: Config, io: CliIo) => Promise<number>;

/**
 * One command group of `keyplane` (serve, tenant, audit …): its lines in `keyplane help`, and the
 * parser of its command lines. A group imports the server, the database drivers and the schema only
 * inside the Command it returns, so a usage error or `keyplane help` answers at once.
 */
export interface CommandGroup {
  /** The first word of its command lines. */
  name: string;
  /** Its lines under "commands:" in `keyplane help`, aligned with the other groups'. */
  usage: string;
  /** What its exit status adds to 0, 1 and 2, for the end of `keyplane help`. */
  exitStatus?: string;
  /** Checks the words after the name before any configuration is read; throws UsageError. */
  parse(args: string[]): Command;
}
