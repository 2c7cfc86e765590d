import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subscribeEvents } from "../testkit/eventSubscriber.ts";
import { freePort } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { serveProcess, type Served } from "../testkit/servedProcess.ts";
import { createScratchDatabase, onPostgres, type ScratchDatabase } from "../testkit/testDatabase.ts";
import { waitFor } from "../testkit/waitFor.ts";
import { ROOT } from "./opsFiles.ts";

// docker-compose.yml's front, without containers: nginx with ops/nginx/keyplane.conf (its upstream
// pointed at two local `keyplane serve` processes on one PostgreSQL, as keyplane-1 and keyplane-2).
// Needs nginx (apt-get install nginx-light) and TEST_DATABASE_URL (two processes share a database);
// skipped otherwise, as the Redis cases of the rate-limit tests are.
const hasNginx = spawnSync("nginx", ["-v"], { stdio: "ignore" }).status === 0;
if (!hasNginx) console.warn("nginx is not installed: test/ops/proxy.test.ts (the compose proxy in front of two replicas) is skipped");

describe.skipIf(!hasNginx || !onPostgres)("the compose proxy (ops/nginx/keyplane.conf) in front of two replicas", () => {
  let dir: string;
  let database: ScratchDatabase | undefined;
  const replicas: Served[] = [];
  let nginx: ChildProcess | undefined;
  let proxy: string;
  let adminToken: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "keyplane-proxy-"));
    database = await createScratchDatabase("kp_proxy");
    const keyring = `k1:${randomBytes(32).toString("base64")}`;
    registerSecret(keyring);
    const env = {
      DATABASE_URL: database.url,
      KEYPLANE_SIGNING_KEY: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      KEYPLANE_ENCRYPTION_KEYS: keyring,
      TRUSTED_PROXIES: "127.0.0.1",
    };
    const migrate = spawnSync(process.execPath, [path.join(ROOT, "bin/keyplane.mjs"), "migrate"], {
      env: { PATH: process.env.PATH ?? "", ...env },
      encoding: "utf8",
    });
    expect(migrate.status, migrate.stderr).toBe(0);
    // As compose starts them: the second once the first is up (it created tenant 'default').
    for (const i of [1, 2]) {
      const dataDir = path.join(dir, `data-${i}`);
      mkdirSync(dataDir);
      replicas.push(await serveProcess(`proxy-replica-${i}`, { ...env, KEYPLANE_DATA_DIR: dataDir }));
    }
    adminToken = replicas[0]!.adminToken();

    const port = await freePort();
    const ports = replicas.map((r) => r.port);
    const conf = readFileSync(path.join(ROOT, "ops/nginx/keyplane.conf"), "utf8")
      .replace("server keyplane-1:4000", `server 127.0.0.1:${ports[0]}`)
      .replace("server keyplane-2:4000", `server 127.0.0.1:${ports[1]}`)
      .replace("listen 8080;", `listen 127.0.0.1:${port};`);
    expect(conf).not.toMatch(/keyplane-[12]:/);
    writeFileSync(path.join(dir, "keyplane.conf"), conf);
    writeFileSync(
      path.join(dir, "nginx.conf"),
      `worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log; events { worker_connections 256; }
       http { access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
              include ${dir}/keyplane.conf; }`,
    );
    nginx = spawn("nginx", ["-c", path.join(dir, "nginx.conf"), "-p", dir, "-g", "daemon off;"], { stdio: "ignore" });
    proxy = `http://127.0.0.1:${port}`;
    const nginxProcess = nginx;
    const errorLog = () => (existsSync(path.join(dir, "error.log")) ? readFileSync(path.join(dir, "error.log"), "utf8") : "");
    await waitFor(
      "nginx to answer /proxy-health",
      async () => {
        if (nginxProcess.exitCode !== null) throw new Error(`nginx exited (${nginxProcess.exitCode}):\n${errorLog()}`);
        return fetch(`${proxy}/proxy-health`).then(
          (r) => r.ok,
          () => false,
        );
      },
      30_000,
      errorLog,
    );
  }, 120_000);

  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      nginx.kill("SIGQUIT");
      await new Promise((r) => nginx!.once("exit", r));
    }
    await Promise.all(replicas.map((r) => r.stop()));
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const gql = (query: string, headers: Record<string, string> = {}) =>
    fetch(`${proxy}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}`, ...headers },
      body: JSON.stringify({ query }),
    });

  it("spreads requests over both replicas and keeps the request id", async () => {
    for (let i = 0; i < 8; i++) {
      const res = await gql("{ me { subject } }", { "x-request-id": `via-proxy-${i}` });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBe(`via-proxy-${i}`);
      expect(await res.json()).toMatchObject({ data: { me: { subject: "bootstrap-admin" } } });
    }
    // Without one, nginx's own request id reaches Keyplane and comes back.
    expect((await gql("{ me { subject } }")).headers.get("x-request-id")).toMatch(/^[0-9a-f]{32}$/);
    for (const replica of replicas) {
      const metrics = await (await fetch(`${replica.url}/metrics`)).text();
      const served = /keyplane_http_requests_total\{method="POST",route="\/graphql",status="200"\} (\d+)/.exec(metrics);
      expect(Number(served?.[1] ?? 0), replica.url).toBeGreaterThan(0);
    }
    // Each replica is scraped on its own; the proxy does not serve a mixed /metrics.
    expect((await fetch(`${proxy}/metrics`)).status).toBe(404);
  });

  it("passes traceparent through to the replica's logs", async () => {
    const traceId = randomBytes(16).toString("hex");
    await (await gql("{ me { subject } }", { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` })).text();
    // The request line is written as the response finishes, possibly after the client has it all.
    const line = await waitFor(
      `the request line of trace ${traceId} in a replica's log`,
      () =>
        replicas
          .flatMap((r) => r.output().split("\n"))
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.traceId === traceId && l.msg === "request"),
      15_000,
      () => replicas.map((r) => r.output()).join("\n"),
    );
    expect(line).toMatchObject({ path: "/graphql", status: 200 });
  });

  it("carries graphql-ws through the WebSocket upgrade on /graphql: a subscriber gets events appended through either replica", async () => {
    // (Not filtered with `types`: tenantEvents' type pattern refuses names with an underscore in the
    // resource part, such as access_token.issued.)
    // Without a cursor the subscription starts at the head it reads once registered, after the ack:
    // the mutations below wait until one replica counts it among its live subscribers.
    const liveSubscribers = async () => {
      let sum = 0;
      for (const replica of replicas) {
        const metrics = await (await fetch(`${replica.url}/metrics`)).text();
        sum += Number(/^keyplane_live_subscribers (\d+)$/m.exec(metrics)?.[1] ?? 0);
      }
      return sum;
    };
    const before = await liveSubscribers();
    const subscriber = subscribeEvents(proxy, adminToken);
    try {
      await subscriber.connected;
      await waitFor("the subscription to be registered on a replica (keyplane_live_subscribers)", async () => (await liveSubscribers()) > before);
      // Several mutations, spread by the proxy over both replicas; every one reaches the one socket.
      for (let i = 0; i < 4; i++) {
        const res = await gql(`mutation { issueServiceToken(input: { subject: "svc-${i}" }) { tokenId } }`);
        expect(res.status).toBe(200);
        const body = (await res.json()) as { data: { issueServiceToken: { tokenId: string } } };
        expect(body.data.issueServiceToken.tokenId).toBeTruthy();
      }
      const issued = (events: typeof subscriber.events) => events.filter((e) => e.type === "access_token.issued");
      const events = issued(await subscriber.until((e) => issued(e).length >= 4, 15_000));
      expect(events.map((e) => (e.data as { subject?: string }).subject)).toEqual(["svc-0", "svc-1", "svc-2", "svc-3"]);
    } finally {
      await subscriber.dispose();
    }
  });
});
