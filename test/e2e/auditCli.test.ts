import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setLegalHold } from "../../src/app/tenants.ts";
import { systemActor } from "../../src/auth/actor.ts";
import { loadConfig } from "../../src/config.ts";
import { createKeyplane } from "../../src/main.ts";
import { runKeyplane, runKeyplaneProcess, type CliResult } from "../testkit/keyplaneCli.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret, testLogger } from "../testkit/secrets.ts";
import { createScratchDatabase } from "../testkit/testDatabase.ts";

// keyplane audit export | verify | checkpoint, as an operator and an auditor run them: the export
// reads the database directly, the verifier needs nothing but the file and Keyplane's JWKS.

const scratch = scratchDirectory("keyplane-audit-cli-");

/** Runs `keyplane argv…` in this process. What the audit commands print is scanned for secrets after the run (token mint prints one: not kept). */
function keyplane(argv: string[], env: Record<string, string>): Promise<CliResult> {
  return runKeyplane(argv, env, argv[0] === "audit" ? { command: "audit-cli", name: argv.slice(0, 2).join("-"), streams: "both" } : undefined);
}

interface Backend {
  name: string;
  setup(): Promise<{ env: Record<string, string>; teardown(): Promise<void> }>;
}

const pglite: Backend = {
  name: "embedded PGlite",
  async setup() {
    return { env: { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: scratch.fresh() }, teardown: async () => {} };
  },
};

const postgres: Backend = {
  name: "PostgreSQL",
  async setup() {
    const database = await createScratchDatabase("kp_audit_cli");
    const signingKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    registerSecret(signingKey);
    return {
      env: {
        NODE_ENV: "test",
        LOG_LEVEL: "warn",
        KEYPLANE_DATA_DIR: scratch.fresh(),
        DATABASE_URL: database.url,
        KEYPLANE_MIGRATE_ON_START: "true",
        KEYPLANE_SIGNING_KEY: signingKey,
        KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      },
      teardown: () => database.drop(),
    };
  },
};

// The embedded run covers PGlite; with TEST_DATABASE_URL (the PostgreSQL run) only PostgreSQL is left.
const backends = process.env.TEST_DATABASE_URL ? [postgres] : [pglite];

describe.each(backends)("keyplane audit on $name", (backend) => {
  let env: Record<string, string>;
  let teardown: () => Promise<void> = async () => {};
  let dir: string;
  let jwksFile: string;

  beforeAll(async () => {
    ({ env, teardown } = await backend.setup());
    dir = scratch.fresh();
    for (const argv of [
      ["tenant", "create", "--id", "acme", "--name", "Acme"],
      ["tenant", "create", "--id", "globex", "--name", "Globex"],
      ["token", "mint", "--tenant", "acme", "--role", "admin", "--sub", "alice"],
      ["token", "mint", "--tenant", "acme", "--role", "service", "--sub", "ci"],
      ["token", "mint", "--tenant", "globex", "--role", "admin", "--sub", "bob"],
    ]) {
      const r = await keyplane(argv, env);
      expect(r.code, r.err).toBe(0);
      if (argv[0] === "token") registerSecret(r.out.trim());
    }
    // The JWKS an auditor would download from /.well-known/jwks.json.
    const kp = await createKeyplane(loadConfig(env), { logger: testLogger("audit-cli") });
    try {
      const url = await kp.listen(0, "127.0.0.1");
      jwksFile = path.join(dir, "jwks.json");
      writeFileSync(jwksFile, await (await fetch(`${url}/.well-known/jwks.json`)).text());
    } finally {
      await kp.close();
    }
  });
  afterAll(() => teardown());

  it("checkpoint signs a checkpoint of a tenant's chain, then finds it current", async () => {
    const signed = await keyplane(["audit", "checkpoint", "--tenant", "acme"], env);
    expect(signed).toMatchObject({ code: 0, err: "" });
    expect(signed.out).toMatch(/^acme: signed checkpoint at sequence 3\n$/);
    expect((await keyplane(["audit", "checkpoint", "--tenant", "acme"], env)).out).toBe("acme: current\n");
    // Every tenant with new events: globex (and the platform log, if it has any).
    const all = await keyplane(["audit", "checkpoint"], env);
    expect(all.code).toBe(0);
    expect(all.out).toMatch(/^globex: signed checkpoint at sequence 2$/m);
    expect(all.out).not.toMatch(/^acme:/m);
  });

  it("export writes the tenant's log to a file (mode 0600) with progress, and verify finds it intact", async () => {
    const file = path.join(dir, "acme.ndjson");
    const r = await keyplane(["audit", "export", "--tenant", "acme", "--out", file], env);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`exported 3 events (0 omitted, 1 checkpoints) of tenant acme, sequences 1-3, chained from genesis to ${file}\n`);
    const progress = r.err.trimEnd().split("\n");
    expect(progress.at(-1)).toBe("exporting acme: 3/3 (100%)");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.includes(".partial"))).toEqual([]);

    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines.map((l) => JSON.parse(l).kind)).toEqual(["header", "event", "event", "event", "checkpoint", "end"]);

    const verified = await keyplane(["audit", "verify", file, "--jwks", jwksFile], env);
    expect(verified).toEqual({
      code: 0,
      out: "ok: tenant acme, chain intact from genesis to sequence 3 (3 events, 0 omitted, 1 checkpoints; signatures verified)\n",
      err: "",
    });
    for (const threads of ["1", "4"]) expect(await keyplane(["audit", "verify", file, "--jwks", jwksFile, "--threads", threads], env)).toEqual(verified);
    const json = await keyplane(["audit", "verify", file, "--jwks", jwksFile, "--json"], env);
    expect(JSON.parse(json.out)).toMatchObject({
      ok: true,
      tenantId: "acme",
      startsFrom: "genesis",
      lastSequence: 3,
      events: 3,
      checkpoints: 1,
      signatures: "verified",
      problem: null,
    });

    // The export is in the log: done by the actor "cli".
    const next = await keyplane(["audit", "export", "--tenant", "acme", "--out", path.join(dir, "acme-2.ndjson"), "--from-sequence", "4"], env);
    expect(next.code).toBe(0);
    const exported = JSON.parse(readFileSync(path.join(dir, "acme-2.ndjson"), "utf8").split("\n")[1]!);
    expect(exported).toMatchObject({
      kind: "event",
      sequence: 4,
      type: "audit.exported",
      data: { via: "cli", format: "ndjson", fromSequence: 1, toSequence: 3, events: 3 },
      audit: { userId: "cli" },
    });
  });

  it("verify names the first bad sequence of a tampered file, and exits 1", async () => {
    const file = path.join(dir, "acme.ndjson");
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    const tampered = path.join(dir, "tampered.ndjson");
    writeFileSync(tampered, [...lines.slice(0, 2), ...lines.slice(3)].join("\n") + "\n");
    const r = await keyplane(["audit", "verify", tampered, "--jwks", jwksFile], env);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAILED: deleted at sequence 2: event 2 is missing/);

    const cut = path.join(dir, "cut.ndjson");
    writeFileSync(cut, lines.slice(0, -2).join("\n") + "\n");
    const truncated = await keyplane(["audit", "verify", cut, "--jwks", jwksFile], env);
    expect(truncated.code).toBe(1);
    expect(truncated.out).toMatch(/^FAILED: truncated at sequence 4: /);

    // Every field of a checkpoint line is signed, and the end line names the last checkpoint.
    const checkpoint = lines.findIndex((l) => l.startsWith('{"kind":"checkpoint",'));
    const edited = path.join(dir, "edited-checkpoint.ndjson");
    writeFileSync(
      edited,
      lines.map((l, j) => (j === checkpoint ? JSON.stringify({ ...JSON.parse(l), signedAt: "2020-01-01T00:00:00.000Z" }) : l)).join("\n") + "\n",
    );
    expect((await keyplane(["audit", "verify", edited, "--jwks", jwksFile], env)).out).toMatch(/^FAILED: checkpoint-signature at sequence 3: /);
    const dropped = path.join(dir, "dropped-checkpoint.ndjson");
    writeFileSync(dropped, lines.filter((_, j) => j !== checkpoint).join("\n") + "\n");
    expect((await keyplane(["audit", "verify", dropped, "--jwks", jwksFile], env)).out).toMatch(
      /^FAILED: checkpoint-link at sequence 3: the checkpoint at 3, the last the export was signed with, is missing/,
    );
  });

  it("exports CSV with a type filter, and verifies it as it is", async () => {
    const file = path.join(dir, "acme.csv");
    const r = await keyplane(["audit", "export", "--tenant", "acme", "--out", file, "--format", "csv", "--types", "access_token.issued"], env);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(file, "utf8").split("\n")[0]).toMatch(/^kind,sequence,eventId,/);
    const verified = await keyplane(["audit", "verify", file, "--jwks", jwksFile], env);
    expect(verified.code, verified.out).toBe(0);
    expect(verified.out).toMatch(/\(2 events, \d+ omitted, 1 checkpoints; signatures verified\)/);
  });

  it("verify without a JWKS checks the chain and warns that signatures were not checked", async () => {
    const r = await keyplane(["audit", "verify", path.join(dir, "acme.ndjson")], env);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/signatures NOT checked/);
    expect(r.err).toMatch(/^warning: signatures not checked: pass --jwks/);
  });

  it("verify fetches the JWKS from a running Keyplane, and runs as its own process without a database", async () => {
    const kp = await createKeyplane(loadConfig(env), { logger: testLogger("audit-cli") });
    try {
      const url = await kp.listen(0, "127.0.0.1");
      // The embedded database is this server's now: verify must not need it.
      const r = await runKeyplaneProcess(["audit", "verify", path.join(dir, "acme.ndjson"), "--jwks", `${url}/.well-known/jwks.json`], env, {
        timeoutMs: 50_000,
      });
      expect(r).toMatchObject({ code: 0, err: "" });
      expect(r.out).toMatch(/^ok: tenant acme, chain intact from genesis/);
    } finally {
      await kp.close();
    }
  });

  it("refuses a tenant that does not exist, a missing file and a bad JWKS", async () => {
    expect(await keyplane(["audit", "export", "--tenant", "nope", "--out", path.join(dir, "nope.ndjson")], env)).toMatchObject({
      code: 1,
      err: "keyplane: no tenant nope (see: keyplane tenant list)\n",
    });
    expect(existsSync(path.join(dir, "nope.ndjson"))).toBe(false);
    expect(await keyplane(["audit", "verify", path.join(dir, "missing.ndjson")], env)).toMatchObject({
      code: 1,
      err: expect.stringMatching(/cannot read .*missing\.ndjson: no such file/),
    });
    expect((await keyplane(["audit", "verify", path.join(dir, "acme.ndjson"), "--jwks", path.join(dir, "acme.csv")], env)).err).toMatch(/--jwks .*: not JSON/);
  });

  it("prune runs retention now and says what it did to each tenant: nothing to prune, under legal hold", async () => {
    // Last: the hold is for good in globex's log.
    const kp = await createKeyplane(loadConfig(env), { logger: testLogger("audit-cli") });
    try {
      await setLegalHold(kp.deps, systemActor("cli", "globex"), "globex", { reason: "litigation 42" });
    } finally {
      await kp.close();
    }
    // The tenants' events are recent: nothing is older than their period (the free tier's 30 days).
    const all = await keyplane(["audit", "prune"], env);
    expect(all).toMatchObject({ code: 0, err: "" });
    expect(all.out).toMatch(/^acme: nothing to prune$/m);
    expect(all.out).toMatch(/^globex: under legal hold \(litigation 42\): nothing pruned$/m);
    const one = await keyplane(["audit", "prune", "--tenant", "acme", "--json"], env);
    expect(one.code, one.err).toBe(0);
    expect(JSON.parse(one.out)).toEqual({ ok: true, tenants: [{ tenantId: "acme", outcome: "nothing" }] });
    const held = await keyplane(["audit", "prune", "--tenant", "globex", "--json"], env);
    expect(JSON.parse(held.out)).toEqual({ ok: true, tenants: [{ tenantId: "globex", outcome: "held", reason: "litigation 42" }] });
    expect(await keyplane(["audit", "prune", "--tenant", "nope"], env)).toMatchObject({
      code: 1,
      err: "keyplane: no tenant nope (see: keyplane tenant list)\n",
    });
  });
});

describe("keyplane audit usage errors", () => {
  const env = { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: "/nonexistent/keyplane-never-created" };
  it.each([
    [["audit"], "audit needs a command: export, verify, verify-stream, checkpoint or prune"],
    [["audit", "burn"], "unknown audit command: burn"],
    [["audit", "export", "--out", "x"], "audit export needs --tenant"],
    [["audit", "export", "--tenant", "acme"], "audit export needs --out"],
    [["audit", "export", "--tenant", "acme", "--out", "x", "--from", "yesterday"], "invalid --from: must be an ISO 8601 timestamp"],
    [["audit", "export", "--tenant", "acme", "--out", "x", "--from-sequence", "0"], "invalid --from-sequence: must be a sequence number"],
    [["audit", "export", "--tenant", "acme", "--out", "x", "--format", "xml"], "invalid --format: must be ndjson or csv"],
    [["audit", "export", "--tenant", "acme", "--out", "x", "--types", "no.such"], "invalid --types: unknown event type no.such"],
    [["audit", "verify"], "audit verify needs a FILE (an export, NDJSON or CSV; several: archives and the live export, oldest first, verified as one chain)"],
    [["audit", "verify", "-", "a", "-"], "audit verify reads stdin once: - stands for one FILE"],
    [["audit", "verify", "a", "--threads", "all"], "invalid --threads: a number of threads, 0 or 1 for one core"],
    [["audit", "checkpoint", "--all"], "Unknown option '--all'"],
    [["audit", "prune", "--tenant", ""], "invalid --tenant: a tenant's id"],
    [["audit", "prune", "acme"], "Unexpected argument 'acme'"],
    [["audit", "prune", "--all"], "Unknown option '--all'"],
  ])("keyplane %j → exit 2: %s", async (argv, message) => {
    const r = await keyplane(argv, env);
    expect(r.code).toBe(2);
    expect(r.err.startsWith(`keyplane: ${message}`)).toBe(true);
    expect(existsSync(env.KEYPLANE_DATA_DIR)).toBe(false);
  });
});
