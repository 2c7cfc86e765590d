import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "./providerWorld.ts";

// A PostgreSQL cluster of the test's own (initdb, pg_ctl), for tests that restart or stop the
// database under a running Keyplane: the machine's shared server must not be restarted under other
// suites. PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
// Suites using it need no TEST_DATABASE_URL, so they run once, in the embedded run.

export interface PrivatePostgres {
  /** postgres:// URL of the cluster's `postgres` database. */
  url: string;
  port: number;
  /** pg_ctl stop: "immediate" is a crash (every connection cut, no checkpoint). */
  stop(mode?: "immediate" | "fast"): void;
  /** pg_ctl start, waiting until it accepts connections. */
  start(): void;
  /** One statement on a connection of its own (the test's view of the database, not Keyplane's). */
  query<R extends pg.QueryResultRow = any>(text: string): Promise<pg.QueryResult<R>>;
  /** Stops it and removes its files. */
  remove(): void;
}

function binDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => path.join(root, v, "bin")).find((dir) => existsSync(path.join(dir, "initdb")));
}

const asRoot = process.getuid?.() === 0;
const hasPostgresUser = asRoot && spawnSync("id", ["-u", "postgres"], { stdio: "ignore" }).status === 0;

/** Why a private cluster cannot be made here, or undefined when it can. */
export function privatePostgresUnavailable(): string | undefined {
  if (!binDir()) return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed";
  if (asRoot && !hasPostgresUser) return "running as root without a postgres user to own the cluster";
  return undefined;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir()!;
  const dir = mkdtempSync(path.join(tmpdir(), "keyplane-pg-"));
  if (asRoot)
    chownSync(dir, Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), Number(execFileSync("id", ["-g", "postgres"]).toString().trim()));
  const data = path.join(dir, "data");
  const port = await freePort();
  const run = (tool: string, args: string[]) => {
    const [command, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
    const result = spawnSync(command, argv, { encoding: "utf8", timeout: 60_000 });
    if (result.status !== 0) throw new Error(`${tool} ${args.join(" ")} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  };
  run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100`;
  const cluster: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => run("pg_ctl", ["-D", data, "-o", options, "-l", path.join(dir, "log"), "-w", "-t", "60", "start"]),
    stop: (mode = "fast") => run("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]),
    async query(text) {
      const client = new pg.Client({ connectionString: cluster.url });
      await client.connect();
      try {
        return await client.query(text);
      } finally {
        await client.end();
      }
    },
    remove() {
      spawnSync(
        asRoot ? "runuser" : path.join(bin, "pg_ctl"),
        asRoot
          ? ["-u", "postgres", "--", path.join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]
          : ["-D", data, "-m", "immediate", "-w", "stop"],
        { stdio: "ignore" },
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
  cluster.start();
  return cluster;
}
