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
