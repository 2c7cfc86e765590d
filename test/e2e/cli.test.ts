import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { USAGE } from "../../src/cli/main.ts";
import { progressReporter } from "../../src/cli/progress.ts";
import { loadConfig } from "../../src/config.ts";
import { createKeyplane } from "../../src/main.ts";
import { runKeyplane as keyplane, runKeyplaneProcess } from "../testkit/keyplaneCli.ts";
import { registerSecret, testLogger } from "../testkit/secrets.ts";
import { createScratchDatabase } from "../testkit/testDatabase.ts";

const signingKeyPem = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

// A hung command fails its test rather than the run.
const keyplaneProcess = (argv: string[], env: Record<string, string>) => runKeyplaneProcess(argv, env, { timeoutMs: 50_000 });

function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** A JWT: three base64url parts. */
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

interface Backend {
  name: string;
  /** Environment of one CLI "installation": its data dir (signing key, embedded database) and database. */
  setup(): Promise<{ env: Record<string, string>; pendingAtStart: boolean; teardown(): Promise<void> }>;
}

const pglite: Backend = {
  name: "embedded PGlite",
  async setup() {
    const dataDir = tempDir("keyplane-cli-");
    return {
      env: { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: dataDir },
      pendingAtStart: false,
      teardown: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  },
};

const postgres: Backend = {
  name: "PostgreSQL",
  async setup() {
    const database = await createScratchDatabase("kp_cli");
    const dataDir = tempDir("keyplane-cli-pg-");
    return {
      // Processes sharing a PostgreSQL must share one signing key: Keyplane will not generate one there.
      env: {
        NODE_ENV: "test",
        LOG_LEVEL: "warn",
        KEYPLANE_DATA_DIR: dataDir,
        DATABASE_URL: database.url,
        KEYPLANE_SIGNING_KEY: signingKeyPem(),
        KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      },
      pendingAtStart: true,
      teardown: async () => {
        rmSync(dataDir, { recursive: true, force: true });
        await database.drop();
      },
    };
  },
};

// The embedded run covers PGlite; with TEST_DATABASE_URL (the PostgreSQL run) only PostgreSQL is left.
const backends = process.env.TEST_DATABASE_URL ? [postgres] : [pglite];

describe.each(backends)("keyplane CLI on $name", (backend) => {
  let env: Record<string, string>;
  let pendingAtStart: boolean;
  let teardown: () => Promise<void> = async () => {};

  beforeAll(async () => {
    ({ env, pendingAtStart, teardown } = await backend.setup());
  });
  afterAll(() => teardown());

  it("refuses to work on a shared database that is not migrated, and says what to run", async () => {
    if (!pendingAtStart) return; // the embedded database migrates itself
    const r = await keyplane(["tenant", "list"], env);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/pending migrations .*run: keyplane migrate/);
  });

  it("migrate applies the migrations, then reports the database current", async () => {
    const first = await keyplane(["migrate"], env);
    expect(first).toMatchObject({ code: 0, err: "" });
    expect(first.out).toMatch(/applied: 0001_event_store, /);
    expect(first.out).toMatch(/is current\n$/);

    const again = await keyplane(["migrate"], env);
    expect(again.code).toBe(0);
    expect(again.out).not.toMatch(/applied/);
    expect(again.out).toMatch(/database.* is current\n$/);
  });

  it("tenant create makes a tenant that tenant list shows", async () => {
    const created = await keyplane(["tenant", "create", "--id", "acme", "--name", "Acme Inc", "--tier", "pro"], env);
    expect(created).toMatchObject({ code: 0, err: "" });
    expect(created.out).toBe("created tenant acme (Acme Inc, pro)\n");
    expect((await keyplane(["tenant", "create", "--id", "globex", "--name", "Globex"], env)).code).toBe(0);

    const list = await keyplane(["tenant", "list"], env);
    expect(list.code).toBe(0);
    const lines = list.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TIER\s+STATUS\s+NAME$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/))).toEqual([
      ["acme", "pro", "active", "Acme Inc"],
      ["globex", "free", "active", "Globex"],
    ]);

    const json = await keyplane(["tenant", "list", "--json"], env);
    expect(JSON.parse(json.out)).toEqual([
      expect.objectContaining({ id: "acme", name: "Acme Inc", tier: "pro", status: "active" }),
      expect.objectContaining({ id: "globex", name: "Globex", tier: "free", status: "active" }),
    ]);
  });

  it("console link prints a one-time sign-in link for the console, the code in its fragment, and needs no database", async () => {
    const r = await keyplane(["console", "link", "--tenant", "acme"], env);
    expect(r.code, r.err).toBe(0);
    const match = /^http:\/\/localhost:\d+\/console\/#code=([A-Za-z0-9._-]+)\n$/.exec(r.out);
    expect(match, r.out).not.toBeNull();
    const code = match![1]!;
    registerSecret(code);
    expect(code).toMatch(JWT);
    expect(decodeProtectedHeader(code)).toMatchObject({ alg: "ES256", typ: "kp-sign-in+jwt" });
    const claims = decodeJwt(code);
    expect(claims).toMatchObject({ sub: "console-link", tenant_id: "acme", roles: ["admin"], kind: "user", iss: "keyplane", aud: "keyplane" });
    expect([299, 300]).toContain(claims.exp! - claims.iat!);
    expect(r.err).toMatch(/^This link signs in once, as console-link \(admin\) in tenant acme; it expires at \d{4}-\d\d-\d\dT[\d:.]+Z\./);

    const viewer = await keyplane(["console", "link", "--tenant", "globex", "--role", "viewer", "--sub", "bob", "--ttl", "900"], env);
    expect(viewer.code, viewer.err).toBe(0);
    const viewerCode = viewer.out.trim().split("#code=")[1]!;
    registerSecret(viewerCode);
    const viewerClaims = decodeJwt(viewerCode);
    expect(viewerClaims).toMatchObject({ sub: "bob", tenant_id: "globex", roles: ["viewer"] });
    expect([899, 900]).toContain(viewerClaims.exp! - viewerClaims.iat!);
    expect(viewerClaims.jti).not.toBe(claims.jti);

    const operator = await keyplane(["console", "link", "--role", "platform"], env);
    expect(operator.code, operator.err).toBe(0);
    const operatorCode = operator.out.trim().split("#code=")[1]!;
    registerSecret(operatorCode);
    expect(decodeJwt(operatorCode)).toMatchObject({ tenant_id: "_platform", roles: ["platform"], kind: "platform" });
  });

  it("a duplicate tenant fails with a clear message and changes nothing", async () => {
    const r = await keyplane(["tenant", "create", "--id", "acme", "--name", "Other name"], env);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toBe("keyplane: tenant acme already exists\n");
    // (acme keeps its name: see the listing after the rebuild below)
  });

  it("a value the domain refuses names the flag", async () => {
    const r = await keyplane(["tenant", "create", "--id", "Not A Slug", "--name", "X"], env);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^keyplane: invalid --id: must be 2-63 characters/);
  });

  it("token mint for a tenant that does not exist fails", async () => {
    const r = await keyplane(["token", "mint", "--tenant", "nope", "--role", "admin", "--sub", "alice"], env);
    expect(r.code).toBe(1);
    expect(r.err).toBe("keyplane: no tenant nope (see: keyplane tenant list)\n");
  });

  it("minted tokens are JWTs that a running Keyplane accepts, with the roles, scopes and lifetime asked for", async () => {
    const admin = await keyplane(["token", "mint", "--tenant", "acme", "--role", "admin", "--sub", "alice"], env);
    expect(admin).toMatchObject({ code: 0, err: "" });
    const adminToken = admin.out.trim();
    expect(admin.out).toBe(adminToken + "\n");
    expect(adminToken).toMatch(JWT);
    registerSecret(adminToken);

    const auditor = await keyplane(
      ["token", "mint", "--tenant", "acme", "--role", "viewer", "--scope", "audit:read", "--sub", "auditor", "--ttl", "600", "--json"],
      env,
    );
    expect(auditor.code).toBe(0);
    const auditorIssued = JSON.parse(auditor.out) as { accessToken: string; tokenId: string; expiresAt: string };
    registerSecret(auditorIssued.accessToken);

    const platform = await keyplane(["token", "mint", "--role", "platform", "--sub", "operator"], env);
    expect(platform.code).toBe(0);
    const platformToken = platform.out.trim();
    registerSecret(platformToken);

    // The claims, as a reader of the token sees them.
    expect(decodeProtectedHeader(adminToken)).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    const adminClaims = decodeJwt(adminToken);
    expect(adminClaims).toMatchObject({ sub: "alice", tenant_id: "acme", roles: ["admin"], kind: "user", iss: "keyplane", aud: "keyplane" });
    // exp is counted from the moment of issue, iat from the signing just after it: the same second or the next.
    const lifetime = (claims: { exp?: number; iat?: number }) => claims.exp! - claims.iat!;
    expect(lifetime(adminClaims)).toBeGreaterThanOrEqual(3599);
    expect(lifetime(adminClaims)).toBeLessThanOrEqual(3600);
    expect(adminClaims.jti).toEqual(expect.any(String));
    const auditorClaims = decodeJwt(auditorIssued.accessToken);
    expect(auditorClaims).toMatchObject({ sub: "auditor", tenant_id: "acme", roles: ["viewer"], scope: "audit:read", jti: auditorIssued.tokenId });
    expect([599, 600]).toContain(lifetime(auditorClaims));
    expect(decodeJwt(platformToken)).toMatchObject({ sub: "operator", tenant_id: "_platform", roles: ["platform"], kind: "platform" });
    expect([86399, 86400]).toContain(lifetime(decodeJwt(platformToken)));

    // A server on the same database and data dir (same signing key), as `keyplane serve` would run it.
    const kp = await createKeyplane(loadConfig(env), { logger: testLogger("cli-e2e") });
    try {
      const url = await kp.listen(0, "127.0.0.1");
      const gql = async (token: string, query: string) => {
        const res = await fetch(`${url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ query }),
        });
        return (await res.json()) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };
      };

      const me = await gql(adminToken, "{ me { subject tenantId roles kind } tenant { id name tier } }");
      expect(me.errors).toBeUndefined();
      expect(me.data).toEqual({
        me: { subject: "alice", tenantId: "acme", roles: ["admin"], kind: "user" },
        tenant: { id: "acme", name: "Acme Inc", tier: "pro" },
      });

      const audit = await gql(auditorIssued.accessToken, "{ me { permissions } auditLog(first: 50) { edges { node { type actor } } } }");
      expect(audit.errors).toBeUndefined();
      expect(audit.data.me.permissions).toEqual(["audit:read"]);
      // What the CLI did is in the tenant's log, done by the actor "cli".
      const nodes = audit.data.auditLog.edges.map((e: { node: { type: string; actor: string } }) => e.node);
      expect(nodes[0]).toEqual({ type: "tenant.created", actor: "cli" });
      expect(nodes.filter((n: { type: string; actor: string }) => n.type === "access_token.issued" && n.actor === "cli")).toHaveLength(2);

      const operator = await gql(platformToken, "{ me { tenantId kind roles } tenants { id } }");
      expect(operator.errors).toBeUndefined();
      expect(operator.data.me).toEqual({ tenantId: "_platform", kind: "platform", roles: ["platform"] });
      expect(operator.data.tenants.map((t: { id: string }) => t.id)).toEqual(expect.arrayContaining(["acme", "globex"]));

      // A platform token is no tenant's admin, and a tenant admin is no platform operator.
      const denied = await gql(platformToken, "{ tenant { id } }");
      expect(denied.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const deniedToo = await gql(adminToken, "{ tenants { id } }");
      expect(deniedToo.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    } finally {
      await kp.close();
    }
  });

  it("token mint --refresh --json returns a refresh token with the access token", async () => {
    const r = await keyplane(["token", "mint", "--tenant", "globex", "--role", "service", "--sub", "ci-runner", "--refresh", "--json"], env);
    expect(r.code).toBe(0);
    const issued = JSON.parse(r.out) as { accessToken: string; refreshToken?: string; refreshExpiresAt?: string };
    registerSecret(issued.accessToken);
    registerSecret(issued.refreshToken);
    expect(issued.refreshToken).toMatch(JWT);
    expect(decodeJwt(issued.accessToken)).toMatchObject({ tenant_id: "globex", roles: ["service"], kind: "service", sid: expect.any(String) });
  });

  it("projections rebuild shows progress and a summary, and leaves the read tables as they were", async () => {
    const r = await keyplane(["projections", "rebuild"], env);
    expect(r.code).toBe(0);
    const summary = /^rebuilt read tables from (\d+) events in [\d.]+ s\n$/.exec(r.out);
    expect(summary).not.toBeNull();
    const events = Number(summary![1]);
    expect(events).toBeGreaterThanOrEqual(6); // two tenants, four tokens at least
    // Not a terminal: a line per tenth, from 0 to the total.
    const progress = r.err.trimEnd().split("\n");
    expect(progress[0]).toBe(`rebuilding projections: 0/${events} (0%)`);
    expect(progress.at(-1)).toBe(`rebuilding projections: ${events}/${events} (100%)`);

    const list = await keyplane(["tenant", "list", "--json"], env);
    expect(JSON.parse(list.out)).toEqual([
      expect.objectContaining({ id: "acme", name: "Acme Inc", tier: "pro", status: "active" }),
      expect.objectContaining({ id: "globex", name: "Globex", tier: "free", status: "active" }),
    ]);
  });

  it("keys rotate with nothing stored under an old key re-encrypts nothing and says so", async () => {
    const r = await keyplane(["keys", "rotate"], env);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^re-encrypted 0 installation\(s\), 0 pending OAuth state\(s\), 0 log stream\(s\), 0 GitHub token\(s\) and 0 linked identity secret\(s\) under key \S+\n$/,
    );
  });

  it("bin/keyplane.mjs, run as its own process on the same installation, does the work and exits 0", async () => {
    const list = await keyplaneProcess(["tenant", "list"], env);
    expect(list).toMatchObject({ code: 0, err: "" });
    expect(list.out).toMatch(/^acme\s+pro\s+active\s+Acme Inc$/m);
  });

  it("tenant set-tier moves a tenant to another tier, recorded in its log; the same tier again records nothing", async () => {
    const moved = await keyplane(["tenant", "set-tier", "--id", "globex", "--tier", "enterprise"], env);
    expect(moved).toEqual({ code: 0, out: "tenant globex: free -> enterprise\n", err: "" });
    const list = await keyplane(["tenant", "list", "--json"], env);
    expect(JSON.parse(list.out)).toEqual(expect.arrayContaining([expect.objectContaining({ id: "globex", tier: "enterprise" })]));
    const again = await keyplane(["tenant", "set-tier", "--id", "globex", "--tier", "enterprise"], env);
    expect(again).toEqual({ code: 0, out: "tenant globex is already on enterprise\n", err: "" });
    // The change is an event of the tenant's own log, by the actor "cli".
    const token = (await keyplane(["token", "mint", "--tenant", "globex", "--role", "admin", "--sub", "auditor"], env)).out.trim();
    registerSecret(token);
    const kp = await createKeyplane(loadConfig(env), { logger: testLogger("cli-e2e-tier") });
    try {
      const url = await kp.listen(0, "127.0.0.1");
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: "{ tenant { tier } auditLog(first: 50) { edges { node { type actor } } } }" }),
      });
      const body = (await res.json()) as any;
      expect(body.data.tenant.tier).toBe("enterprise");
      expect(body.data.auditLog.edges.map((e: any) => e.node).filter((n: any) => n.type === "tenant.tier_changed")).toEqual([
        { type: "tenant.tier_changed", actor: "cli" },
      ]);
    } finally {
      await kp.close();
    }

    const unknown = await keyplane(["tenant", "set-tier", "--id", "nope", "--tier", "pro"], env);
    expect(unknown).toMatchObject({ code: 1, out: "", err: "keyplane: no tenant nope (see: keyplane tenant list)\n" });
    const badTier = await keyplane(["tenant", "set-tier", "--id", "globex", "--tier", "platinum"], env);
    expect(badTier.code).toBe(2);
    expect(badTier.err).toMatch(/^keyplane: --tier must be one of free, pro, enterprise \(got 'platinum'\)/);
    expect((await keyplane(["tenant", "set-tier", "--id", "globex"], env)).err).toMatch(/^keyplane: tenant set-tier needs --id and --tier/);
  });

  it("tenant suspend and resume change the tenant's status, as the list shows", async () => {
    const status = async () =>
      (JSON.parse((await keyplane(["tenant", "list", "--json"], env)).out) as { id: string; status: string }[]).find((t) => t.id === "globex")?.status;
    expect(await keyplane(["tenant", "suspend", "--id", "globex", "--reason", "unpaid invoice"], env)).toEqual({
      code: 0,
      out: "tenant globex: suspended\n",
      err: "",
    });
    expect(await status()).toBe("suspended");
    expect(await keyplane(["tenant", "resume", "--id", "globex"], env)).toEqual({ code: 0, out: "tenant globex: active\n", err: "" });
    expect(await status()).toBe("active");
    expect(await keyplane(["tenant", "resume", "--id", "nope"], env)).toMatchObject({ code: 1, err: "keyplane: no tenant nope (see: keyplane tenant list)\n" });
    expect((await keyplane(["tenant", "suspend", "--id", "globex"], env)).err).toMatch(/^keyplane: tenant suspend needs --id and --reason/);
    expect(await status()).toBe("active");
  });
});

describe("progress of a long command", () => {
  const draw = (isTty: boolean, steps: Array<[number, number]>) => {
    let text = "";
    const p = progressReporter("rebuilding projections", (s) => void (text += s), isTty);
    for (const [done, total] of steps) p.update(done, total);
    p.done();
    return text;
  };
  const steps = Array.from({ length: 101 }, (_, i) => [i * 50, 5000] as [number, number]);

  it("is one line redrawn in place on a terminal, ending at the total", () => {
    const text = draw(true, steps);
    expect(text.startsWith("\rrebuilding projections: 0/5000 (0%)")).toBe(true);
    expect(text.endsWith("\rrebuilding projections: 5000/5000 (100%)\n")).toBe(true);
    expect(text.split("\n")).toHaveLength(2);
  });

  it("is a line per tenth elsewhere (logs, CI)", () => {
    const lines = draw(false, steps).trimEnd().split("\n");
    expect(lines).toHaveLength(11);
    expect(lines[0]).toBe("rebuilding projections: 0/5000 (0%)");
    expect(lines[5]).toBe("rebuilding projections: 2500/5000 (50%)");
    expect(lines[10]).toBe("rebuilding projections: 5000/5000 (100%)");
  });

  it("says 100% for an empty log", () => {
    expect(draw(false, [[0, 0]])).toBe("rebuilding projections: 0/0 (100%)\n");
  });
});

describe("keyplane CLI usage errors", () => {
  // Arguments are checked before any database is opened: this data dir must stay untouched.
  let dataDir: string;
  let env: Record<string, string>;
  beforeAll(() => {
    dataDir = tempDir("keyplane-cli-usage-");
    env = { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: path.join(dataDir, "never-created") };
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it.each([
    { argv: [], message: "no command given" },
    { argv: ["nonsense"], message: "unknown command: nonsense" },
    { argv: ["tenant"], message: "tenant needs a command: create, list, set-tier, suspend or resume" },
    { argv: ["tenant", "delete"], message: "unknown tenant command: delete" },
    { argv: ["token", "burn"], message: "unknown token command: burn" },
    { argv: ["projections", "replay"], message: "unknown projections command: replay" },
    { argv: ["tenant", "create", "--name", "Acme"], message: "tenant create needs --id and --name" },
    { argv: ["tenant", "create", "--id", "acme", "--name", "Acme", "--tier", "gold"], message: "--tier must be one of free, pro, enterprise (got 'gold')" },
    { argv: ["tenant", "create", "--id", "acme", "--name", "Acme", "--colour", "red"], message: "Unknown option '--colour'" },
    { argv: ["tenant", "list", "--all"], message: "Unknown option '--all'" },
    { argv: ["tenant", "create", "--id"], message: "Option '--id <value>' argument missing" },
    { argv: ["token", "mint", "--tenant", "acme", "--role", "admin"], message: "token mint needs --sub" },
    { argv: ["token", "mint", "--tenant", "acme", "--sub", "alice"], message: "token mint needs --role" },
    { argv: ["token", "mint", "--role", "admin", "--sub", "alice"], message: "token mint needs --tenant (or --role platform)" },
    {
      argv: ["token", "mint", "--tenant", "acme", "--role", "owner", "--sub", "alice"],
      message: "--role must be one of viewer, editor, admin, service, platform (got 'owner')",
    },
    {
      argv: ["token", "mint", "--tenant", "acme", "--role", "admin", "--sub", "alice", "--ttl", "1h"],
      message: "--ttl is a whole number of seconds (got '1h')",
    },
    { argv: ["token", "mint", "--role", "platform", "--role", "admin", "--sub", "op"], message: "--role platform cannot be combined with other roles" },
    {
      argv: ["token", "mint", "--tenant", "acme", "--role", "platform", "--sub", "op"],
      message: "--role platform mints a platform-operator token: leave out --tenant",
    },
    { argv: ["console"], message: "console needs a command: link" },
    { argv: ["console", "open"], message: "unknown console command: open" },
    { argv: ["console", "link"], message: "console link needs --tenant (or --role platform)" },
    { argv: ["console", "link", "--role", "viewer"], message: "console link needs --tenant (or --role platform)" },
    { argv: ["console", "link", "--tenant", "acme", "--ttl", "901"], message: "--ttl is a whole number of seconds from 30 to 900 (got '901')" },
    { argv: ["console", "link", "--tenant", "acme", "--ttl", "5m"], message: "--ttl is a whole number of seconds from 30 to 900 (got '5m')" },
    { argv: ["console", "link", "--tenant", "acme", "--role", "platform"], message: "--role platform signs in a platform operator: leave out --tenant" },
    { argv: ["console", "link", "--tenant", "Acme Inc"], message: "invalid --tenant: is not a tenant id" },
    { argv: ["serve", "--port", "80"], message: "serve takes no arguments (got --port 80)" },
    { argv: ["projections", "rebuild", "now"], message: "projections rebuild takes no arguments (got now)" },
  ])("keyplane $argv → exit 2: $message", async ({ argv, message }) => {
    const r = await keyplane(argv, env);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err.startsWith(`keyplane: ${message}`)).toBe(true);
    expect(r.err.endsWith(`\n\n${USAGE}`)).toBe(true);
    expect(r.err).toContain("usage: keyplane <command>");
  });

  it("keys generate prints a keyring entry the configuration accepts, and no two alike", async () => {
    const first = await keyplane(["keys", "generate"], {});
    const second = await keyplane(["keys", "generate"], {});
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=\n$/);
    expect(first.out).not.toBe(second.out);
    registerSecret(first.out.trim().split(":")[1]);
    registerSecret(second.out.trim().split(":")[1]);
    const dataDir = tempDir("keyplane-keys-");
    try {
      // A Keyplane given both keys starts and uses the first.
      const r = await keyplane(["tenant", "list", "--json"], {
        NODE_ENV: "test",
        LOG_LEVEL: "warn",
        KEYPLANE_DATA_DIR: dataDir,
        KEYPLANE_ENCRYPTION_KEYS: `${first.out.trim()},${second.out.trim()}`,
      });
      expect(r.code, r.err).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("keys needs generate or rotate", async () => {
    const r = await keyplane(["keys"], {});
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/keys needs a command: generate or rotate/);
  });

  it("help prints the usage on stdout and exits 0", async () => {
    for (const argv of [["help"], ["--help"], ["token", "mint", "-h"]]) {
      const r = await keyplane(argv, env);
      expect(r).toEqual({ code: 0, out: USAGE, err: "" });
    }
  });

  it("a bad configuration is a usage error with the variable named", async () => {
    const r = await keyplane(["tenant", "list"], { ...env, PORT: "eighty" });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^keyplane: invalid configuration: PORT: /);
  });

  it("console link before any start says there is no signing key yet, and creates nothing", async () => {
    const r = await keyplane(["console", "link", "--tenant", "default"], env);
    expect(r).toMatchObject({ code: 1, out: "" });
    expect(r.err).toMatch(/^keyplane: no signing key in .*never-created yet: start keyplane serve once first/);
  });

  it("opened no database for any of it", async () => {
    expect(existsSync(env.KEYPLANE_DATA_DIR!)).toBe(false);
  });
});

describe("bin/keyplane.mjs as a process", () => {
  // Usage errors open no database: the data dir is never created.
  const env = () => ({ NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: path.join(tmpdir(), `keyplane-never-${randomBytes(4).toString("hex")}`) });

  it("exits 2 with the usage on an unknown command", async () => {
    const r = await keyplaneProcess(["nonsense"], env());
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^keyplane: unknown command: nonsense\n\nusage: keyplane <command>/);
  });

  it("exits 0 for help", async () => {
    const r = await keyplaneProcess(["help"], env());
    expect(r).toEqual({ code: 0, out: USAGE, err: "" });
  });
});
