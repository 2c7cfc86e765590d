import { openDatabase, type DatabaseHandle } from "../src/store/db.ts";

/**
 * A handle of one connection that counts what it costs: the statements it sends (each one round trip
 * to the server), and on Citus the commands the coordinator sends on to workers (Citus reports each
 * one as a notice while citus.log_remote_commands is on).
 */
export interface CountingHandle {
  handle: DatabaseHandle;
  /** Runs fn and returns what it cost. */
  measure(fn: (handle: DatabaseHandle) => Promise<unknown>): Promise<{ statements: number; workerCommands: number }>;
}

export async function countingHandle(url: string, options: { schema?: string; citus?: boolean } = {}): Promise<CountingHandle> {
  const handle = await openDatabase({ url, schema: options.schema, poolMax: 1 });
  let statements = 0;
  let workerCommands = 0;
  handle.pool!.on("connect", (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      statements++;
      return query(...args);
    };
    client.on("notice", (notice) => {
      if (notice.message?.startsWith("issuing ")) workerCommands++;
    });
    // Every session of this handle logs its remote commands (only this handle's connection).
    if (options.citus) void query("set citus.log_remote_commands = on; set client_min_messages = log");
  });
  return {
    handle,
    async measure(fn) {
      // The pool's first connection runs its session settings first: open it before counting.
      await handle.db.selectNoFrom((eb) => eb.lit(1).as("one")).execute();
      statements = 0;
      workerCommands = 0;
      await fn(handle);
      return { statements, workerCommands };
    },
  };
}
