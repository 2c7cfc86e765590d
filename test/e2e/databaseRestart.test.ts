import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { privatePostgresUnavailable, startPrivatePostgres, type PrivatePostgres } from "../testkit/privatePostgres.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";
import { waitFor } from "../testkit/waitFor.ts";

// A real `keyplane serve` on a PostgreSQL cluster of the test's own, under a write loop, while the
// cluster is crashed (pg_ctl -m immediate) and started again, twice. The process stays up; requests
// meanwhile get a retryable 503 UNAVAILABLE; /readyz goes 503 and back to 200; writes resume within
// 2 s of the database's return; every acknowledged write is in the log exactly once.

const unavailable = privatePostgresUnavailable();
if (unavailable) console.warn(`test/e2e/databaseRestart.test.ts is skipped: ${unavailable}`);

const scratch = scratchDirectory("keyplane-restart-");
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

interface WriteOutcome {
  at: number;
  status: number;
  tokenId?: string;
  code?: string;
  retryAfter?: string | null;
}

async function issueToken(url: string, token: string, subject: string): Promise<WriteOutcome> {
  try {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: "mutation ($s: String!) { issueServiceToken(input: { subject: $s, ttlSeconds: 300 }) { tokenId } }",
        variables: { s: subject },
      }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await res.json()) as { data?: { issueServiceToken?: { tokenId: string } }; errors?: Array<{ extensions?: { code?: string } }> };
    return {
      at: Date.now(),
      status: res.status,
      tokenId: body.data?.issueServiceToken?.tokenId,
      code: body.errors?.[0]?.extensions?.code,
      retryAfter: res.headers.get("retry-after"),
    };
  } catch (error) {
    // No answer at all would mean the process is gone (or hung): recorded, and the test fails on it.
    return { at: Date.now(), status: 0, code: (error as Error).name };
  }
}

/** One operation over graphql-ws: its result, or its errors when it fails. */
function overSocket(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
): Promise<{ data?: unknown; errors?: Array<{ extensions?: { code?: string } }> }> {
  return new Promise((resolve, reject) => {
    let result: { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> } = {};
    client.subscribe(
      { query, variables },
      {
        next: (value) => (result = value as typeof result),
        error: (error) => (Array.isArray(error) ? resolve({ errors: error }) : reject(error)),
        complete: () => resolve(result),
      },
    );
  });
}

async function readyz(url: string): Promise<number> {
  const started = Date.now();
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  // Readiness answers promptly whatever the database does (it never waits behind the pool).
  expect(Date.now() - started).toBeLessThan(3_000);
  return res.status;
}

describe.skipIf(unavailable)("keyplane serve while its PostgreSQL restarts", () => {
  let cluster: PrivatePostgres;
  let served: Served;
  let token: string;

  beforeAll(async () => {
    cluster = await startPrivatePostgres();
    served = await serveProcess("db-restart", {
      DATABASE_URL: cluster.url,
      KEYPLANE_MIGRATE_ON_START: "true",
      KEYPLANE_SIGNING_KEY: signingKey,
      KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      KEYPLANE_DATA_DIR: scratch.fresh(),
      DATABASE_POOL_MAX: "10",
      EVENT_FEED_POLL_MS: "500",
    });
    token = served.adminToken();
    // initdb, a first start and migrating a fresh cluster: past a minute once on a loaded two-core CI
    // (the browser suites run beside it). A wait for readiness, not a budget.
  }, 180_000);
  afterAll(async () => {
    await killServedProcesses();
    cluster?.remove();
  });

  it("answers /readyz at once while a burst of 500 requests holds the pool", async () => {
    const burst = Promise.all(Array.from({ length: 500 }, (_, i) => issueToken(served.url, token, `burst-${i}`)));
    const probes: number[] = [];
    for (let i = 0; i < 5; i++) probes.push(await readyz(served.url));
    const outcomes = await burst;
    expect(probes).toEqual([200, 200, 200, 200, 200]);
    // The burst itself is served, or shed with the retryable answer when a request waited longer than
    // DATABASE_CONNECT_TIMEOUT_MS for a connection (a loaded machine): never anything else.
    for (const o of outcomes) if (!o.tokenId) expect(o, JSON.stringify(o)).toMatchObject({ status: 503, code: "UNAVAILABLE" });
    expect(outcomes.filter((o) => o.tokenId).length).toBeGreaterThan(0);
  });

  it("stays up through two crashes of the database: 503 UNAVAILABLE meanwhile, writes back within 2 s, every acknowledged write present once", async () => {
    const outcomes: WriteOutcome[] = [];
    let writing = true;
    let n = 0;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      while (writing) outcomes.push(await issueToken(served.url, token, `writer-${w}-${n++}`));
    });
    const acknowledgedSince = (t: number) => outcomes.filter((o) => o.at > t && o.tokenId).length;
    const recoveries: number[] = [];
    // A socket opened (and authenticated) before the crash: its operations meanwhile get the same code.
    const wsUrl = served.url.replace("http", "ws") + "/graphql";
    const socket = createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
      lazy: false,
    });
    const MUTATION = "mutation ($s: String!) { issueServiceToken(input: { subject: $s, ttlSeconds: 300 }) { tokenId } }";
    expect(await overSocket(socket, MUTATION, { s: "socket-before" })).toMatchObject({ data: { issueServiceToken: { tokenId: expect.any(String) } } });
    let socketDuringOutage: Awaited<ReturnType<typeof overSocket>> | undefined;
    let lateSocketClosed: number | undefined;
    // A token this process has not seen yet: authenticating it needs the database (a token seen
    // before comes from memory, for as long as the authentication cache's re-read has not failed).
    const unseen = await fetch(`${served.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'mutation { issueServiceToken(input: { subject: "late-socket", ttlSeconds: 300 }) { accessToken } }' }),
    }).then(async (res) => ((await res.json()) as { data: { issueServiceToken: { accessToken: string } } }).data.issueServiceToken.accessToken);
    registerSecret(unseen);
    try {
      for (let round = 0; round < 2; round++) {
        const before = Date.now();
        await waitFor("writes before the crash", () => acknowledgedSince(before) >= 10, 30_000, served.output);
        const crashedAt = Date.now();
        cluster.stop("immediate");
        await waitFor("a write refused as UNAVAILABLE", () => outcomes.some((o) => o.at > crashedAt && o.code === "UNAVAILABLE"), 30_000, served.output);
        await waitFor("/readyz to say not ready", async () => (await readyz(served.url)) === 503, 30_000, served.output);
        if (round === 0) {
          socketDuringOutage = await overSocket(socket, MUTATION, { s: "socket-during" });
          // A socket opening meanwhile cannot be authenticated: 1013 "try again later", not 4500.
          const late = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${unseen}` }, retryAttempts: 0 });
          lateSocketClosed = await overSocket(late, "{ __typename }", {}).then(
            () => undefined,
            (close: { code?: number }) => close.code,
          );
          await late.dispose();
        }
        cluster.start();
        const back = Date.now();
        const firstWrite = await waitFor("a write after the database returned", () => outcomes.find((o) => o.at > back && o.tokenId), 30_000, served.output);
        recoveries.push(firstWrite.at - back);
        await waitFor("/readyz to say ready", async () => (await readyz(served.url)) === 200, 30_000, served.output);
      }
    } finally {
      writing = false;
      await Promise.all(writers);
      await socket.dispose();
    }
    expect(socketDuringOutage?.errors?.[0]?.extensions?.code).toBe("UNAVAILABLE");
    expect(lateSocketClosed).toBe(1013);

    expect(served.child.exitCode, served.output()).toBeNull();
    // Back within 2 s of the database accepting connections again.
    for (const ms of recoveries) expect(ms).toBeLessThan(2_000);
    // Every failure was the retryable answer: a 503 with UNAVAILABLE and Retry-After, never a masked 500 or no answer.
    const failed = outcomes.filter((o) => !o.tokenId);
    expect(failed.length).toBeGreaterThan(0);
    for (const o of failed) expect(o, JSON.stringify(o)).toMatchObject({ status: 503, code: "UNAVAILABLE", retryAfter: expect.stringMatching(/^\d+$/) });
    // Every acknowledged write is in the log, exactly once.
    const acknowledged = outcomes.filter((o) => o.tokenId).map((o) => o.tokenId!);
    const { rows } = await cluster.query("select data->>'tokenId' as id, count(*)::int as n from events where event_type = 'access_token.issued' group by 1");
    const logged = new Map(rows.map((r: { id: string; n: number }) => [r.id, r.n]));
    for (const id of acknowledged) expect(logged.get(id), id).toBe(1);
  });
});
