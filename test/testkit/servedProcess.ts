import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./providerWorld.ts";
import { registerSecret } from "./secrets.ts";
import { waitFor } from "./waitFor.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = path.join(ROOT, "bin/keyplane.mjs");

export interface ServeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Served {
  name: string;
  port: number;
  url: string;
  child: ChildProcess;
  /** Settles once the process has exited and its output is complete (and written to the log directory). */
  exited: Promise<ServeExit>;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr, interleaved as they arrived. */
  output(): string;
  /** The bootstrap admin token the process wrote on first start (registered as a secret). */
  adminToken(): string;
  /** Signals the process (unless it has exited) and waits for its exit; rejects after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ServeExit>;
}

export interface ServeOptions {
  /** A fixed port, e.g. for a restart that clients must find at the same address; a free one otherwise. */
  port?: number;
}

const running = new Set<Served>();

/**
 * `node bin/keyplane.mjs serve` as a process of its own, not waited on (see waitHealthy). `env` adds
 * to or overrides a minimal environment; PORT and HOST are the ones `url` names.
 */
export async function spawnServe(name: string, env: Record<string, string> = {}, options: ServeOptions = {}): Promise<Served> {
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [BIN, "serve"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "info", ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let both = "";
  child.stdout!.setEncoding("utf8").on("data", (text: string) => {
    out += text;
    both += text;
  });
  child.stderr!.setEncoding("utf8").on("data", (text: string) => {
    err += text;
    both += text;
  });
  // 'close', not 'exit': only then has all of the output been read.
  const exited = new Promise<ServeExit>((resolve) =>
    child.once("close", (code, signal) => {
      running.delete(served);
      // The suite scans these logs for leaked secrets after the run.
      const logDir = process.env.KEYPLANE_TEST_LOG_DIR;
      if (logDir) writeFileSync(path.join(logDir, `serve-${name}-${child.pid}.log`), both);
      resolve({ code, signal });
    }),
  );
  const served: Served = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    output: () => both,
    adminToken() {
      const file = /admin token (?:\([^)]*\) )?is in (\S+)/.exec(both)?.[1];
      if (!file) throw new Error(`${name} wrote no admin token:\n${both}`);
      const token = readFileSync(file, "utf8").trim();
      registerSecret(token);
      return token;
    },
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} still running ${timeoutMs} ms after ${signal}:\n${both}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
  running.add(served);
  return served;
}

/** Resolves once `served` answers /healthz; throws, with its output, if it exits first or times out. */
export async function waitHealthy(served: Served, timeoutMs = 60_000): Promise<Served> {
  let exit: ServeExit | undefined;
  void served.exited.then((e) => (exit = e));
  await waitFor(
    `${served.name} to answer /healthz`,
    async () => {
      if (exit) throw new Error(`${served.name} exited (code ${exit.code}, signal ${exit.signal}) before it was healthy:\n${served.output()}`);
      return fetch(`${served.url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
    },
    timeoutMs,
    served.output,
  );
  return served;
}

/** `keyplane serve` as a process of its own, up once /healthz answers. */
export async function serveProcess(name: string, env: Record<string, string> = {}, options: ServeOptions = {}): Promise<Served> {
  const served = await spawnServe(name, env, options);
  try {
    return await waitHealthy(served);
  } catch (error) {
    await served.stop("SIGKILL");
    throw error;
  }
}

/** SIGKILLs every served process still running (for afterEach/afterAll), and waits for their exits. */
export async function killServedProcesses(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop("SIGKILL")));
}
