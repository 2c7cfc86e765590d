import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, spawnServe, waitHealthy, type Served } from "../testkit/servedProcess.ts";

// `keyplane serve` as `npm start` runs it: its own process, the embedded database in a data dir.
const serve = (dataDir: string, name: string) => spawnServe(name, { KEYPLANE_DATA_DIR: dataDir, LOG_LEVEL: "debug" });

async function gql(port: number, token: string, query: string) {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return { status: res.status, body: (await res.json()) as { data?: any; errors?: Array<{ message: string }> } };
}

describe("keyplane serve on the embedded database", () => {
  let dataDir: string;
  let first: Served;
  let token: string;
  let tokenFile: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-serve-"));
    tokenFile = path.join(dataDir, "admin-token");
  });

  afterAll(async () => {
    await killServedProcesses();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("starts, answers /healthz, and says where it serves and where the admin token is", async () => {
    first = await serve(dataDir, "first");
    await waitHealthy(first);
    expect(first.stderr()).toContain(`Keyplane is serving http://127.0.0.1:${first.port}/graphql (embedded database in ${path.resolve(dataDir)})`);
    expect(first.stderr()).toContain(`Created tenant 'default'; its admin token (valid for 7 days) is in ${tokenFile}`);
    expect(first.stderr()).toContain(`Open http://127.0.0.1:${first.port}/console/ and sign in with that token`);

    const ready = await fetch(`http://127.0.0.1:${first.port}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", checks: { database: "ok", migrations: "ok" } });
    const jwks = (await (await fetch(`http://127.0.0.1:${first.port}/.well-known/jwks.json`)).json()) as {
      keys: Array<{ kid: string; alg: string; d?: string }>;
    };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ alg: "ES256", kty: "EC", crv: "P-256" });
    expect(jwks.keys[0]!.d).toBeUndefined();
    const graphiql = await fetch(`http://127.0.0.1:${first.port}/graphql`, { headers: { accept: "text/html" } });
    expect(graphiql.status).toBe(200);
    expect(await graphiql.text()).toMatch(/<title>Keyplane<\/title>/);
  });

  it("wrote an admin token readable by its owner only", () => {
    const stat = statSync(tokenFile);
    expect(stat.mode & 0o777).toBe(0o600);
    token = readFileSync(tokenFile, "utf8").trim();
    registerSecret(token);
    expect(token.split(".")).toHaveLength(3);
    expect(statSync(path.join(dataDir, "signing-key.pem")).mode & 0o777).toBe(0o600);
  });

  it("answers a first query with that token, as tenant 'default'", async () => {
    const { status, body } = await gql(first.port, token, "{ me { subject tenantId roles } tenant { id name tier } }");
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data).toEqual({
      me: { subject: "bootstrap-admin", tenantId: "default", roles: ["admin"] },
      tenant: { id: "default", name: "Default", tier: "free" },
    });
  });

  it("a second serve on the same data dir stops with a message that the embedded database is in use", async () => {
    const second = await serve(dataDir, "second");
    const { code } = await Promise.race([second.exited, new Promise<never>((_, r) => setTimeout(() => r(new Error("second serve kept running")), 45_000))]);
    expect(code).not.toBe(0);
    expect(code).toBe(1);
    expect(second.stderr()).toMatch(new RegExp(`the embedded database in ${escapeRegExp(path.resolve(dataDir))} is in use by process ${first.child.pid}`));
    expect(second.stderr()).toMatch(/set DATABASE_URL/);
    // The first is unharmed.
    expect((await gql(first.port, token, "{ me { tenantId } }")).body.data).toEqual({ me: { tenantId: "default" } });
  });

  it("exits 0 on SIGTERM and releases the data dir", async () => {
    const { code, signal } = await first.stop("SIGTERM");
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(existsSync(path.join(dataDir, "keyplane.pid"))).toBe(false);
  });

  it("a restart keeps the tenant, the key and the token: no second tenant, no new token", async () => {
    const tokenBefore = readFileSync(tokenFile, "utf8");
    const mtimeBefore = statSync(tokenFile).mtimeMs;

    const again = await serve(dataDir, "restart");
    await waitHealthy(again);
    expect(again.stderr()).not.toContain("Created tenant");
    expect(again.stderr()).toContain(`The admin token written on first start (valid for 7 days from then) is in ${tokenFile}`);
    expect(readFileSync(tokenFile, "utf8")).toBe(tokenBefore);
    expect(statSync(tokenFile).mtimeMs).toBe(mtimeBefore);

    // The same token still works (same signing key), and the log holds one tenant.created only.
    const { body } = await gql(
      again.port,
      token,
      '{ me { tenantId } auditLog(first: 100, filter: { types: ["tenant.created"] }) { edges { node { type streamId } } } }',
    );
    expect(body.errors).toBeUndefined();
    expect(body.data.me.tenantId).toBe("default");
    expect(body.data.auditLog.edges).toEqual([{ node: { type: "tenant.created", streamId: "default" } }]);

    const { code } = await again.stop("SIGINT");
    expect(code).toBe(0);

    let out = "";
    const listed = await runCli(
      ["tenant", "list", "--json"],
      { KEYPLANE_DATA_DIR: dataDir, LOG_LEVEL: "warn" },
      { out: (s) => void (out += s), err: () => {} },
    );
    expect(listed).toBe(0);
    expect(JSON.parse(out).map((t: { id: string }) => t.id)).toEqual(["default"]);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
