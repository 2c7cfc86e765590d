import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { connect } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../testkit/providerWorld.ts";
import { privatePostgresUnavailable, startPrivatePostgres, type PrivatePostgres } from "../testkit/privatePostgres.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";
import { waitFor } from "../testkit/waitFor.ts";

// An Idempotency-Key whose server is killed (SIGKILL) in the middle of the mutation. The client
// cannot know whether its write committed, so it retries with the same key on a restarted server:
// if the write had not committed, the retry runs (once); if it had, the retry gets its result.
// Before, the key stayed 'pending' for 24 hours and every retry was a CONFLICT.

const unavailable = privatePostgresUnavailable();
if (unavailable) console.warn(`test/e2e/idempotencyCrash.test.ts is skipped: ${unavailable}`);

const scratch = scratchDirectory("keyplane-idempotency-crash-");
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const encryptionKeys = `k1:${randomBytes(32).toString("base64")}`;
const ISSUE = "mutation ($s: String!) { issueServiceToken(input: { subject: $s, ttlSeconds: 600 }) { tokenId accessToken } }";

describe.skipIf(unavailable)("an idempotent mutation whose process is killed mid-request", () => {
  let cluster: PrivatePostgres;
  let port: number;
  let dataDir: string;
  let served: Served;
  let token: string;

  const serve = () =>
    serveProcess(
      "idempotency-crash",
      {
        DATABASE_URL: cluster.url,
        KEYPLANE_MIGRATE_ON_START: "true",
        KEYPLANE_SIGNING_KEY: signingKey,
        KEYPLANE_ENCRYPTION_KEYS: encryptionKeys,
        KEYPLANE_DATA_DIR: dataDir,
      },
      { port },
    );

  beforeAll(async () => {
    cluster = await startPrivatePostgres();
    port = await freePort();
    dataDir = scratch.fresh();
    served = await serve();
    token = served.adminToken();
  });
  afterAll(async () => {
    await killServedProcesses();
    cluster?.remove();
  });

  async function send(key: string, subject: string) {
    const res = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "idempotency-key": key },
      body: JSON.stringify({ query: ISSUE, variables: { s: subject } }),
    });
    const body = (await res.json()) as {
      data?: { issueServiceToken?: { tokenId: string; accessToken: string } };
      errors?: Array<{ extensions?: { code?: string } }>;
    };
    registerSecret(body.data?.issueServiceToken?.accessToken);
    return body;
  }

  /** The mutation as raw bytes on a socket the test never reads: the client will not learn the answer. */
  function sendUnread(key: string, subject: string): () => void {
    const body = JSON.stringify({ query: ISSUE, variables: { s: subject } });
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.write(
      `POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nauthorization: Bearer ${token}\r\nidempotency-key: ${key}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return () => socket.destroy();
  }

  const issuedFor = async (subject: string) =>
    (await cluster.query(`select data->>'tokenId' as id from events where event_type = 'access_token.issued' and data->>'subject' = '${subject}'`)).rows.map(
      (r: { id: string }) => r.id,
    );

  async function killAndRestart() {
    await served.stop("SIGKILL");
    served = await serve();
  }

  it("before its write committed: the retry runs, once", async () => {
    const key = randomUUID();
    // The tenant's head row locked from outside: the mutation's append waits on it, mid-transaction.
    const holder = new pg.Client({ connectionString: cluster.url });
    await holder.connect();
    await holder.query("begin");
    await holder.query("select 1 from tenant_heads where tenant_id = 'default' for update");
    const inFlight = send(key, "killed-before-commit").catch((error: Error) => error);
    await waitFor(
      "the mutation to wait on the lock",
      async () => (await cluster.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock'")).rows[0].n > 0,
      30_000,
    );
    await killAndRestart();
    expect(await inFlight).toBeInstanceOf(Error);
    await holder.query("rollback");
    await holder.end();
    // The killed process's transaction never committed: nothing of it is left.
    await waitFor(
      "the killed request's transaction to end",
      async () => (await cluster.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock'")).rows[0].n === 0,
      30_000,
    );
    expect(await issuedFor("killed-before-commit")).toEqual([]);

    const retry = await send(key, "killed-before-commit");
    expect(retry.errors).toBeUndefined();
    const tokenId = retry.data!.issueServiceToken!.tokenId;
    expect(await issuedFor("killed-before-commit")).toEqual([tokenId]);
    expect((await send(key, "killed-before-commit")).data).toEqual(retry.data);
    expect(await issuedFor("killed-before-commit")).toEqual([tokenId]);
  });

  it("after its write committed, before the client read the answer: the retry gets that answer", async () => {
    const key = randomUUID();
    const close = sendUnread(key, "killed-after-commit");
    await waitFor("the write to commit", async () => (await issuedFor("killed-after-commit")).length === 1, 30_000, served.output);
    await killAndRestart();
    close();
    const [committed] = await issuedFor("killed-after-commit");
    const retry = await send(key, "killed-after-commit");
    expect(retry.errors).toBeUndefined();
    expect(retry.data!.issueServiceToken!.tokenId).toBe(committed);
    expect(await issuedFor("killed-after-commit")).toEqual([committed]);
  });
});
