import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./providerWorld.ts";
import { registerSecret } from "./secrets.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = path.join(ROOT, "bin/keyplane.mjs");

export interface Served {
  url: string;
  child: ChildProcess;
  output(): string;
  /** The bootstrap admin token the process wrote on first start (registered as a secret). */
  adminToken(): string;
  stop(): Promise<void>;
}

/** `keyplane serve` as a process of its own on a free port, up once /healthz answers. */
export async function serveProcess(name: string, env: Record<string, string>): Promise<Served> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, "serve"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      const logDir = process.env.KEYPLANE_TEST_LOG_DIR;
      if (logDir) writeFileSync(path.join(logDir, `serve-${name}-${child.pid}.log`), out);
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited:\n${out}`);
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) throw new Error(`${name} did not answer /healthz:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    output: () => out,
    adminToken() {
      const file = /admin token is in (\S+)/.exec(out)?.[1];
      if (!file) throw new Error(`${name} wrote no admin token:\n${out}`);
      const token = readFileSync(file, "utf8").trim();
      registerSecret(token);
      return token;
    },
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
