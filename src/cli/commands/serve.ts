import { existsSync } from "node:fs";
import path from "node:path";
import type { Config } from "../../config.ts";
import { ConflictError } from "../../errors.ts";
import { noArgs } from "../args.ts";
import type { CliIo, CommandGroup } from "../command.ts";

export const serveGroup: CommandGroup = {
  name: "serve",
  usage: `  serve                                   serve the GraphQL API (migrates the embedded database;
                                          on first start creates tenant 'default' and an admin token)
`,
  parse(args) {
    noArgs("serve", args);
    return serve;
  },
};

async function serve(config: Config, io: CliIo): Promise<number> {
  const [{ createKeyplane }, { bootstrapDefaultTenant }] = await Promise.all([import("../../main.ts"), import("../../app/bootstrap.ts")]);
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
  io.err(
    `Keyplane is serving ${shown}/graphql (${kp.database.backend === "pglite" ? `embedded database in ${path.resolve(config.dataDir)}` : "PostgreSQL"})\n`,
  );
  // Where a person goes next: the console, signed in with the admin token.
  const existing = path.resolve(config.dataDir, "admin-token");
  if (tokenFile) io.err(`Created tenant 'default'; its admin token (valid for 7 days) is in ${tokenFile}\n`);
  else if (existsSync(existing)) io.err(`The admin token written on first start (valid for 7 days from then) is in ${existing}\n`);
  io.err(
    `Open ${shown}/console/ and sign in${tokenFile || existsSync(existing) ? ` with that token (cat ${path.relative(process.cwd(), tokenFile ?? existing) || tokenFile})` : " with a Keyplane token"}\n`,
  );
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
