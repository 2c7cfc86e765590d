import { generateKeyPairSync, randomBytes, createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.ts";
import { rotateEncryptionKeys } from "../../src/app/installations/rotateEncryptionKeys.ts";
import { stateAad } from "../../src/app/oauthStates.ts";
import { readCredentials } from "../../src/app/installations/vault.ts";
import { readStreamSecrets } from "../../src/app/logStreams/streamSecrets.ts";
import { openDatabase, withPlatform, withTenant, type DatabaseHandle, type Db } from "../../src/store/db.ts";
import { migrateToLatest } from "../../src/store/migrate.ts";
import { browseLink, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { createTestDatabase, onPostgres } from "../testkit/testDatabase.ts";
import { seedInstallation } from "../testkit/fixtures.ts";

// What an attacker with a copy of the database (a backup, a replica, a leaked dump) learns about
// the credentials Keyplane holds: nothing usable. Every table is dumped as text and searched for
// every secret the test can name, in the encodings a careless column might use.

const CREDENTIALS = `query($id: ID!) { installationCredentials(id: $id) { accessToken expiresAt platform } }`;
const START = `mutation { startInstallation(platform: jira) { authorizationUrl } }`;
const AUDIT = `query($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { edges { node { type streamId actor data } } } }`;

// The background refresher stays out of the way: these suites drive every refresh themselves.
// A log stream to 127.0.0.1 (allowed here), paused at once: its destination is a secret at rest too.
const QUIET = { CREDENTIAL_REFRESH_INTERVAL_SECONDS: "86400", LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1" };

const newKey = () => randomBytes(32).toString("base64");

interface Dump {
  tables: Map<string, string>;
  all: string;
}

/** Every base table of every non-system schema, each row as text, seen past row-level security. */
async function dumpDatabase(db: Db): Promise<Dump> {
  return withPlatform(db, async (trx) => {
    const { rows: tables } = await sql<{ schemaname: string; tablename: string }>`
      select schemaname, tablename from pg_catalog.pg_tables
      where schemaname not in ('pg_catalog', 'information_schema') and schemaname not like 'pg_toast%'
      order by 1, 2`.execute(trx);
    const dump = new Map<string, string>();
    for (const { schemaname, tablename } of tables) {
      const { rows } = await sql<{ row: string }>`select t::text as row from ${sql.table(`${schemaname}.${tablename}`)} t`.execute(trx);
      dump.set(`${schemaname}.${tablename}`, rows.map((r) => r.row).join("\n"));
    }
    return { tables: dump, all: [...dump.values()].join("\n") };
  });
}

/** The forms a secret could be stored in without encryption. */
function encodings(value: string): string[] {
  const bytes = Buffer.from(value, "utf8");
  return [value, bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("hex"), JSON.stringify(value).slice(1, -1)];
}

/** Large pieces of a PEM key: any 32-character run of its base64 body at a 32-aligned offset. */
function pemPieces(pem: string): string[] {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const pieces: string[] = [];
  for (let i = 0; i + 32 <= body.length; i += 32) pieces.push(body.slice(i, i + 32));
  return pieces;
}

function expectAbsent(dump: Dump, named: Record<string, string[]>) {
  const found: string[] = [];
  for (const [name, values] of Object.entries(named)) {
    for (const value of values) {
      if (value.length < 12) throw new Error(`${name}: too short to search for (${value.length})`);
      for (const form of encodings(value)) {
        for (const [table, text] of dump.tables) if (text.includes(form)) found.push(`${name} in ${table}`);
      }
    }
  }
  expect([...new Set(found)]).toEqual([]);
}

/** Every secret the fakes and the testkit registered during this run (the log-leak scan's list). */
function registeredSecrets(): string[] {
  const dir = process.env.KEYPLANE_TEST_LOG_DIR;
  const file = dir ? path.join(dir, "secrets.txt") : undefined;
  if (!file || !existsSync(file)) return [];
  return [
    ...new Set(
      readFileSync(file, "utf8")
        .split("\n")
        .map((s) => s.trim())
        .filter((s) => s.length >= 16),
    ),
  ];
}

async function vault(app: TestApp, tenantId: string, installationId: string) {
  const entry = await withTenant(app.kp.deps.db, tenantId, (trx) => readCredentials(trx, app.kp.deps.keyring, tenantId, installationId));
  if (!entry) throw new Error(`no vault row for ${installationId}`);
  return entry.credentials;
}

async function install(app: TestApp, platform: "github" | "slack" | "jira", token: string): Promise<string> {
  const installed = await seedInstallation(app, token, platform);
  expect(installed.outcome).toBe("created");
  return installed.id;
}

async function readToken(app: TestApp, token: string, id: string): Promise<string> {
  const res = await app.gql(CREDENTIALS, { id }, { token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  const accessToken = res.data.installationCredentials.accessToken as string;
  registerSecret(accessToken);
  return accessToken;
}

describe("credentials at rest: a database dump holds no usable secret", () => {
  let world: ProviderWorld;
  let app: TestApp;
  let tenant: SeededTenant;
  const ids: Record<"github" | "slack" | "jira", string> = { github: "", slack: "", jira: "" };

  beforeAll(async () => {
    world = await startProviderWorld();
    app = await createTestApp({ env: { ...world.env, ...QUIET }, name: "credentials-at-rest" });
    tenant = await app.seedTenant();
    for (const platform of ["slack", "jira", "github"] as const) ids[platform] = await install(app, platform, tenant.tokens.editor);
  });
  afterAll(async () => {
    await app?.close();
    await world?.close();
  });

  it("stores neither tokens, refresh tokens, provider secrets, the app key nor the PKCE verifier in any table", async () => {
    // What services are handed: GitHub's minted on demand, Slack's and Jira's from the vault.
    const accessTokens = [
      await readToken(app, tenant.tokens.service, ids.slack),
      await readToken(app, tenant.tokens.service, ids.jira),
      await readToken(app, tenant.tokens.service, ids.github),
    ];
    expect(accessTokens[0]).toMatch(/^xoxe\.xoxb-/);
    expect(accessTokens[2]).toMatch(/^ghs_/);
    expect(world.slack.isAccessTokenValid(accessTokens[0]!)).toBe(true);
    expect(world.atlassian.isAccessTokenValid(accessTokens[1]!)).toBe(true);

    // The rotating refresh tokens, as only the keyring can read them.
    const slack = await vault(app, tenant.tenantId, ids.slack);
    const jira = await vault(app, tenant.tenantId, ids.jira);
    expect(slack.accessToken).toBe(accessTokens[0]);
    expect(jira.accessToken).toBe(accessTokens[1]);
    const refreshTokens = [slack.refreshToken!, jira.refreshToken!];
    expect(refreshTokens.every((t) => t && t.length > 20)).toBe(true);

    // A pending authorization: its state is in the provider URL, its PKCE verifier encrypted in oauth_states.
    const started = await app.gql(START, {}, { token: tenant.tokens.editor });
    expect(started.errors).toBeUndefined();
    const authorizationUrl = new URL(started.data.startInstallation.authorizationUrl as string);
    const state = authorizationUrl.searchParams.get("state")!;
    const states = await withTenant(app.kp.deps.db, tenant.tenantId, (trx) => trx.selectFrom("oauth_states").selectAll().execute());
    const pending = states.filter((s) => s.consumed_at === null);
    expect(pending).toHaveLength(1);
    const verifier = app.kp.deps.keyring.decrypt(pending[0]!.code_verifier!, stateAad(pending[0]!.request_id));
    expect(createHash("sha256").update(verifier).digest("base64url")).toBe(authorizationUrl.searchParams.get("code_challenge"));
    // Consumed states may keep their (encrypted) verifier until pruned: those count too.
    const verifiers = states.filter((s) => s.code_verifier).map((s) => app.kp.deps.keyring.decrypt(s.code_verifier!, stateAad(s.request_id)));
    expect(verifiers).toContain(verifier);
    verifiers.forEach(registerSecret);

    const dump = await dumpDatabase(app.kp.deps.db);
    // The dump is real: it sees the installations, their envelopes and the pending state's hash.
    expect(dump.tables.size).toBeGreaterThanOrEqual(10);
    for (const id of Object.values(ids)) expect(dump.all).toContain(id);
    const secretsTable = [...dump.tables.entries()].find(([name]) => name.endsWith(".installation_secrets"))![1];
    expect(secretsTable.split("\n")).toHaveLength(2); // Slack and Jira; GitHub tokens are minted, never stored
    expect(secretsTable).toMatch(/kp1\.k1\./);
    expect(dump.all).toContain(createHash("sha256").update(state).digest("hex"));

    const keyMaterial = world.env.KEYPLANE_ENCRYPTION_KEYS!.split(":")[1]!;
    expectAbsent(dump, {
      "access token": accessTokens,
      "refresh token": refreshTokens,
      "GitHub App private key": pemPieces(world.githubApp.privateKeyPem),
      "GitHub webhook secret": [world.githubApp.webhookSecret],
      "client secret": [world.githubApp.clientSecret, world.env.SLACK_CLIENT_SECRET!, world.env.ATLASSIAN_CLIENT_SECRET!],
      "PKCE verifier": verifiers,
      "OAuth state": [state],
      "encryption key": [keyMaterial],
      // Everything else the fakes handed out (codes, the GitHub user token of the claim check, ...)
      // and the Keyplane tokens the testkit minted.
      "registered secret": registeredSecrets(),
    });
  });

  it("refuses a ciphertext copied into another installation's row: the read fails and never returns the other token", async () => {
    const second = await install(app, "jira", tenant.tokens.editor);
    const other = await app.seedTenant();
    const foreign = await install(app, "jira", other.tokens.editor);
    const sourceToken = await readToken(app, tenant.tokens.service, ids.jira);
    const secondToken = await readToken(app, tenant.tokens.service, second);
    await readToken(app, other.tokens.service, foreign);

    const copy = async (
      from: { tenantId: string; id: string },
      to: { tenantId: string; id: string },
      column: "access_token" | "refresh_token" = "access_token",
    ) =>
      withPlatform(app.kp.deps.db, async (trx) => {
        const source = await trx
          .selectFrom("installation_secrets")
          .select([column])
          .where("tenant_id", "=", from.tenantId)
          .where("installation_id", "=", from.id)
          .executeTakeFirstOrThrow();
        const updated = await trx
          .updateTable("installation_secrets")
          .set({ access_token: source[column]! })
          .where("tenant_id", "=", to.tenantId)
          .where("installation_id", "=", to.id)
          .executeTakeFirst();
        expect(Number(updated.numUpdatedRows)).toBe(1);
      });

    const refused = async (token: string, id: string) => {
      const res = await fetch(`${app.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: CREDENTIALS, variables: { id } }),
      });
      const text = await res.text();
      expect(text).not.toContain(sourceToken);
      const body = JSON.parse(text);
      expect(body.data?.installationCredentials ?? null).toBeNull();
      expect(body.errors).toHaveLength(1);
      return body.errors[0];
    };

    // Same tenant, another installation.
    await copy({ tenantId: tenant.tenantId, id: ids.jira }, { tenantId: tenant.tenantId, id: second });
    const error = await refused(tenant.tokens.service, second);
    expect(error.message).not.toMatch(/kp1\./);
    expect(JSON.stringify(error)).not.toContain(secondToken);
    // Another tenant's row.
    await copy({ tenantId: tenant.tenantId, id: ids.jira }, { tenantId: other.tenantId, id: foreign });
    await refused(other.tokens.service, foreign);
    // The refresh-token column of the same row into its access-token column.
    await copy({ tenantId: tenant.tenantId, id: ids.jira }, { tenantId: tenant.tenantId, id: ids.jira }, "refresh_token");
    await refused(tenant.tokens.service, ids.jira);
    // The keyring says the same, directly.
    await expect(vault(app, tenant.tenantId, second)).rejects.toThrow(/failed to decrypt/);
  });
});

/**
 * One database that survives Keyplane restarts and that the `keyplane` command line can open too:
 * a fresh PostgreSQL database, or an embedded PGlite in a data dir (one process at a time: each
 * handle is closed before the next opens it).
 */
interface DurableStore {
  open(): Promise<DatabaseHandle>;
  release(handle: DatabaseHandle): Promise<void>;
  cliEnv: Record<string, string>;
  dispose(): Promise<void>;
}

async function durableStore(): Promise<DurableStore> {
  if (onPostgres) {
    const handle = await createTestDatabase();
    const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(handle.db);
    const url = new URL(process.env.TEST_DATABASE_URL!);
    url.pathname = `/${rows[0]!.name}`;
    const signingKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    return {
      open: async () => handle,
      release: async () => {},
      cliEnv: { DATABASE_URL: url.toString(), KEYPLANE_SIGNING_KEY: signingKey },
      dispose: () => handle.close(),
    };
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-rotate-"));
  let migrated = false;
  return {
    async open() {
      const handle = await openDatabase({ dataDir });
      if (!migrated) await migrateToLatest(handle);
      migrated = true;
      return handle;
    },
    release: (handle) => handle.close(),
    cliEnv: { KEYPLANE_DATA_DIR: dataDir },
    dispose: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

async function keyplaneCli(argv: string[], env: Record<string, string>) {
  let out = "";
  let err = "";
  const code = await runCli(argv, { NODE_ENV: "test", LOG_LEVEL: "warn", ...env }, { out: (s) => void (out += s), err: (s) => void (err += s), isTty: false });
  return { code, out, err };
}

describe("keys rotate: every stored secret moves to the new key, resumably, and the old key can go", () => {
  let world: ProviderWorld;
  let store: DurableStore;
  const k1 = `k1:${newKey()}`;
  const k2 = `k2:${newKey()}`;

  beforeAll(async () => {
    world = await startProviderWorld();
    store = await durableStore();
  });
  afterAll(async () => {
    await world?.close();
    await store?.dispose();
  });

  /** A Keyplane on the store with these keys; stop() closes it and releases the database. */
  async function keyplaneWith(keys: string, name: string) {
    const database = await store.open();
    const app = await createTestApp({ env: { ...world.env, ...QUIET, KEYPLANE_ENCRYPTION_KEYS: keys }, database, name });
    return {
      app,
      async stop() {
        await app.close();
        await store.release(database);
      },
    };
  }

  const keyIds = async (db: Db) =>
    withPlatform(db, (trx) =>
      trx.selectFrom("installation_secrets").select(["installation_id", "key_id", "access_token", "refresh_token"]).orderBy("installation_id").execute(),
    );

  it("re-encrypts under k2 with one audited event per installation; a rerun does nothing; k2 alone then reads everything", async () => {
    // Before: everything under k1.
    const first = await keyplaneWith(k1, "rotate-k1");
    const tenant = await first.app.seedTenant();
    const slack = await install(first.app, "slack", tenant.tokens.editor);
    const jira = await install(first.app, "jira", tenant.tokens.editor);
    const before = { [slack]: await readToken(first.app, tenant.tokens.service, slack), [jira]: await readToken(first.app, tenant.tokens.service, jira) };
    const pending = await first.app.gql(START, {}, { token: tenant.tokens.editor });
    const pendingUrl = pending.data.startInstallation.authorizationUrl as string;
    expect((await keyIds(first.app.kp.deps.db)).map((r) => r.key_id)).toEqual(["k1", "k1"]);
    const stream = await first.app.gql(
      `mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { secret logStream { id } } }`,
      { input: { name: "siem", kind: "splunk", url: "https://127.0.0.1:9/?channel=rotate-me", secret: "splunk-token-at-rest" } },
      { token: tenant.tokens.admin },
    );
    expect(stream.errors).toBeUndefined();
    registerSecret("splunk-token-at-rest");
    const streamId = stream.data.createLogStream.logStream.id as string;
    await first.app.gql(`mutation ($id: ID!) { pauseLogStream(id: $id) { state } }`, { id: streamId }, { token: tenant.tokens.admin });
    // A service's linked GitHub identity: its user and refresh tokens are under k1 too.
    const linkerGrant = { tenantId: tenant.tenantId, roles: ["service" as const], subject: "svc-rotate", ttlSeconds: 86_400 };
    const githubLogin = `rotate-${randomBytes(3).toString("hex")}`;
    const linked = await browseLink(first.app, world.github, await first.app.mintToken(linkerGrant), githubLogin);
    expect(linked.status, JSON.stringify(linked.body)).toBe(200);
    await first.stop();

    // Restarted with the new key first: old values still read; rotation interrupted after one installation.
    const second = await keyplaneWith(`${k2},${k1}`, "rotate-k2-k1");
    const service2 = await second.app.mintToken({ tenantId: tenant.tenantId, roles: ["service"] });
    for (const id of [slack, jira]) expect(await readToken(second.app, service2, id)).toBe(before[id]);
    const interrupted = await rotateEncryptionKeys(second.app.kp.deps, (done) => {
      if (done === 1) throw new Error("interrupted");
    }).catch((error: Error) => error);
    expect(interrupted).toBeInstanceOf(Error);
    expect((await keyIds(second.app.kp.deps.db)).map((r) => r.key_id).sort()).toEqual(["k1", "k2"]);
    // Encrypted PKCE verifiers still under k1: the pending one (and any consumed one not yet pruned).
    const oldStates = await withPlatform(second.app.kp.deps.db, (trx) =>
      trx.selectFrom("oauth_states").select("request_id").where("key_id", "=", "k1").execute(),
    );
    expect(oldStates.length).toBeGreaterThanOrEqual(1);
    await second.stop();

    // The command line finishes the job, then finds nothing left.
    const cliEnv = { ...store.cliEnv, KEYPLANE_ENCRYPTION_KEYS: `${k2},${k1}` };
    const run = await keyplaneCli(["keys", "rotate"], cliEnv);
    expect(run, run.err).toMatchObject({ code: 0 });
    expect(run.out).toContain(
      `re-encrypted 1 installation(s), ${oldStates.length} pending OAuth state(s), 1 log stream(s), 0 GitHub token(s) and 1 linked identity secret(s) under key k2`,
    );
    expect(run.out + run.err).not.toContain(k2.slice(3));
    expect(run.out + run.err).not.toContain(k1.slice(3));
    const rerun = await keyplaneCli(["keys", "rotate"], cliEnv);
    expect(rerun, rerun.err).toMatchObject({ code: 0 });
    expect(rerun.out).toMatch(
      /re-encrypted 0 installation\(s\), 0 pending OAuth state\(s\), 0 log stream\(s\), 0 GitHub token\(s\) and 0 linked identity secret\(s\) under key k2/,
    );

    // Only k2 left: everything still reads, nothing was rotated twice.
    const third = await keyplaneWith(k2, "rotate-k2");
    try {
      const rows = await keyIds(third.app.kp.deps.db);
      expect(rows.map((r) => r.key_id)).toEqual(["k2", "k2"]);
      for (const row of rows) {
        for (const envelope of [row.access_token, row.refresh_token!]) expect(third.app.kp.deps.keyring.keyIdOf(envelope)).toBe("k2");
      }
      const states = await withPlatform(third.app.kp.deps.db, (trx) =>
        trx.selectFrom("oauth_states").select(["key_id", "code_verifier"]).where("code_verifier", "is not", null).execute(),
      );
      expect(states.length).toBe(oldStates.length);
      for (const state of states) {
        expect(state.key_id).toBe("k2");
        expect(third.app.kp.deps.keyring.keyIdOf(state.code_verifier!)).toBe("k2");
      }
      expect(await rotateEncryptionKeys(third.app.kp.deps)).toEqual({ installations: 0, oauthStates: 0, logStreams: 0, githubTokens: 0, identities: 0 });
      // The stream's destination reads under k2 alone.
      const destination = await withTenant(third.app.kp.deps.db, tenant.tenantId, (trx) =>
        readStreamSecrets(trx, third.app.kp.deps.keyring, tenant.tenantId, streamId),
      );
      expect(destination).toEqual({ url: "https://127.0.0.1:9/?channel=rotate-me", secret: "splunk-token-at-rest" });

      const service3 = await third.app.mintToken({ tenantId: tenant.tenantId, roles: ["service"] });
      for (const id of [slack, jira]) expect(await readToken(third.app, service3, id)).toBe(before[id]);

      // The identity's tokens moved to k2 and still act as its GitHub account.
      const identitySecrets = await withPlatform(third.app.kp.deps.db, (trx) => trx.selectFrom("identity_secrets").selectAll().execute());
      expect(identitySecrets).toHaveLength(1);
      for (const envelope of [identitySecrets[0]!.access_token, identitySecrets[0]!.refresh_token!])
        expect(third.app.kp.deps.keyring.keyIdOf(envelope)).toBe("k2");
      const handed = await third.app.gql("{ identityToken { token login } }", {}, { token: await third.app.mintToken(linkerGrant) });
      expect(handed.errors).toBeUndefined();
      registerSecret(handed.data.identityToken.token);
      expect(handed.data.identityToken.login).toBe(githubLogin);
      const who = await fetch(`${world.github.url}/user`, { headers: { authorization: `Bearer ${handed.data.identityToken.token}` } });
      expect(((await who.json()) as { login: string }).login).toBe(githubLogin);

      const admin = await third.app.mintToken({ tenantId: tenant.tenantId, roles: ["admin"] });
      const audit = await third.app.gql(AUDIT, { types: ["installation.credentials_reencrypted"] }, { token: admin });
      expect(audit.errors).toBeUndefined();
      const events = audit.data.auditLog.edges.map((e: any) => e.node);
      expect(events.map((e: any) => e.streamId).sort()).toEqual([slack, jira].sort());
      for (const event of events) expect(event.data).toMatchObject({ fromKeyIds: ["k1"], toKeyId: "k2" });

      // The pending authorization, started under k1, completes under k2 alone: its verifier moved too.
      let url = pendingUrl;
      let res: Response | undefined;
      for (let hop = 0; hop < 4; hop++) {
        res = await fetch(url, { redirect: "manual" });
        const location = res.headers.get("location");
        if (!(res.status >= 300 && res.status < 400 && location)) break;
        url = new URL(location, url).toString();
      }
      expect(res!.status).toBe(200);
      const completed = (await res!.json()) as any;
      expect(completed.outcome).toBe("created");
      expect(await readToken(third.app, service3, completed.installation.id)).toMatch(/^eyJ/);
    } finally {
      await third.stop();
    }
  });
});
