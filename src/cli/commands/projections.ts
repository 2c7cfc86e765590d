import type { Config } from "../../config.ts";
import { noArgs } from "../args.ts";
import { UsageError, type CliIo, type CommandGroup } from "../command.ts";
import { progressReporter } from "../progress.ts";
import { withKeyplane } from "../withKeyplane.ts";

export const projectionsGroup: CommandGroup = {
  name: "projections",
  usage: `  projections rebuild                     replay the event log into fresh read tables
`,
  parse([sub, ...rest]) {
    if (sub === "rebuild") {
      noArgs("projections rebuild", rest);
      return projectionsRebuild;
    }
    throw new UsageError(sub ? `unknown projections command: ${sub}` : "projections needs a command: rebuild");
  },
};

async function projectionsRebuild(config: Config, io: CliIo): Promise<number> {
  return withKeyplane(config, async (kp) => {
    const { rebuildProjections } = await import("../../app/rebuildProjections.ts");
    const progress = progressReporter("rebuilding projections", io.err, Boolean(io.isTty));
    const started = Date.now();
    const { events } = await rebuildProjections(kp.deps.db, progress.update);
    progress.done();
    io.out(`rebuilt read tables from ${events} events in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return 0;
  });
}
