import path from "node:path";
import type { Config } from "../../config.ts";
import { lockDataDir } from "../../store/dataDirLock.ts";
import { noArgs } from "../args.ts";
import type { CliIo, CommandGroup } from "../command.ts";

export const migrateGroup: CommandGroup = {
  name: "migrate",
  usage: `  migrate                                 apply pending migrations to DATABASE_URL (or the embedded database)
`,
  parse(args) {
    noArgs("migrate", args);
    return migrate;
  },
};

async function migrate(config: Config, io: CliIo): Promise<number> {
  const embedded = !config.database.url;
  const [{ openDatabase }, { migrateToLatest }] = await Promise.all([import("../../store/db.ts"), import("../../store/migrate.ts")]);
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
