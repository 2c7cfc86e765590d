import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { openDatabase, withPlatform, type DatabaseHandle } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { startLogReceivers, type LogReceivers } from "../fakes/logReceivers.ts";
import { privatePostgresUnavailable, startPrivatePostgres, type PrivatePostgres } from "../testkit/privatePostgres.ts";
import { scratchDirectory } from "../testkit/scratch.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Two `keyplane serve` processes on one PostgreSQL. The one delivering a log stream is killed
// (SIGKILL) while the receiver holds a batch; the other takes the stream over when the lease lapses
// and the receiver ends up with every event, in order, the batch in flight being the only one it got twice.

const unavailable = privatePostgresUnavailable();
if (unavailable) console.warn(`test/e2e/logStreamFailover.test.ts is skipped: ${unavailable}`);

const scratch = scratchDirectory("keyplane-stream-failover-");
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const encryptionKeys = `k1:${randomBytes(32).toString("base64")}`;
const EVENTS = 3000;
const BATCH = 100;

describe.skipIf(unavailable)("a log stream whose delivering process dies", () => {
  let cluster: PrivatePostgres;
  let receivers: LogReceivers;
  let database: DatabaseHandle;
  const processes: Served[] = [];

  beforeAll(async () => {
    cluster = await startPrivatePostgres();
    receivers = await startLogReceivers();
    const dir = scratch.fresh();
    writeFileSync(path.join(dir, "ca.pem"), receivers.caPem);
    const env = {
      DATABASE_URL: cluster.url,
      KEYPLANE_MIGRATE_ON_START: "true",
      KEYPLANE_SIGNING_KEY: signingKey,
      KEYPLANE_ENCRYPTION_KEYS: encryptionKeys,
      LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1",
      LOG_STREAM_CA_FILE: path.join(dir, "ca.pem"),
      LOG_STREAM_LEASE_SECONDS: "2",
      LOG_STREAM_BATCH_SIZE: String(BATCH),
    };
    // One after the other: the first migrates and writes the bootstrap admin token.
    processes.push(await serveProcess("streams-a", { ...env, KEYPLANE_DATA_DIR: scratch.fresh() }));
    processes.push(await serveProcess("streams-b", { ...env, KEYPLANE_DATA_DIR: scratch.fresh() }));
    database = await openDatabase({ url: cluster.url });
  }, 180_000);
  afterAll(async () => {
    await killServedProcesses();
    await database?.close();
    await receivers?.close();
    cluster?.remove();
  });

  it("is taken over by the other process: every event arrives, in order, only the batch in flight twice", async () => {
    const [a] = processes;
    const token = a!.adminToken();
    const gql = async (url: string, query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      return (await res.json()) as { data: any; errors?: unknown[] };
    };
    const tenantId = (await gql(a!.url, "{ tenant { id } }")).data.tenant.id as string;
    const endpoint = `failover-${randomUUID()}`;
    const created = await gql(a!.url, "mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { secret logStream { id } } }", {
      input: { name: "siem", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` },
    });
    expect(created.errors).toBeUndefined();
    const secret = created.data.createLogStream.secret as string;
    registerSecret(secret);
    const streamId = created.data.createLogStream.logStream.id as string;
    receivers.webhookEndpoint(endpoint, [secret]);
    const first = await waitFor("the creation delivered", () => receivers.accepted("webhook").find((d) => d.logStreamId === streamId));
    const firstSequence = (first.event as { sequence: number }).sequence;

    // Events arrive while the stream is delivered: appended through the store's write path.
    const appending = (async () => {
      for (let i = 0; i < EVENTS; i++) {
        await appendEvents(database.db, {
          tenantId,
          streamType: "security",
          streamId: "access.denied",
          expectedVersion: "any",
          events: [AccessDenied({ level: "warning", status: "denied", reason: "failover", resource: "graphql", action: "agent:write", details: { n: i } })],
          metadata: { actor: { subject: "load", kind: "user", roles: ["viewer"] } },
          occurredAt: new Date(),
        });
      }
    })();

    // Mid-way, the receiver holds the next batch for 3 s; its sender is killed while it waits.
    await waitFor("a part delivered", () => receivers.accepted("webhook").filter((d) => d.logStreamId === streamId).length > 300, 60_000);
    receivers.fail("webhook", { delayMs: 3000 });
    await waitFor("a batch held by the receiver", () => receivers.attempts("webhook").some((x) => x.fault && "delayMs" in x.fault));
    const holder = await leaseOwner(streamId);
    const victim = processes.find((p) => holder?.includes(`:${p.child.pid}:`));
    expect(victim, `the lease holder ${holder} is one of the two processes`).toBeDefined();
    await victim!.stop("SIGKILL");
    await appending;

    const head = await withPlatform(database.db, (trx) =>
      trx.selectFrom("tenant_heads").select("last_seq").where("tenant_id", "=", tenantId).executeTakeFirstOrThrow(),
    );
    const last = Number(head.last_seq);
    const received = await waitFor(
      "every event at the receiver",
      () => {
        const got = receivers.accepted("webhook").filter((d) => d.logStreamId === streamId);
        return got.some((d) => (d.event as { sequence: number }).sequence >= last) && got;
      },
      60_000,
    );
    const survivor = await leaseOwner(streamId);
    expect(survivor).not.toBe(holder);

    const sequences = received.map((d) => (d.event as { sequence: number }).sequence).filter((s) => s <= last);
    // In order of first arrival, dense from the creation to the end.
    const firstArrivals = sequences.filter((s, i) => sequences.indexOf(s) === i);
    expect(firstArrivals).toEqual(Array.from({ length: last - firstSequence + 1 }, (_, i) => firstSequence + i));
    // Received twice: at most one batch, one contiguous run (the batch the killed process had sent).
    const twice = [...new Set(sequences.filter((s, i) => sequences.indexOf(s) !== i))].sort((x, y) => x - y);
    // The held batch was accepted once its sender was dead, and sent again by the survivor.
    expect(twice.length).toBeGreaterThan(0);
    expect(twice.length).toBeLessThanOrEqual(BATCH);
    expect(twice.at(-1)! - twice[0]! + 1).toBe(twice.length);
    expect(sequences.filter((s) => sequences.indexOf(s) !== sequences.lastIndexOf(s)).length).toBe(twice.length * 2);
  }, 240_000);

  async function leaseOwner(streamId: string): Promise<string | null> {
    const row = await withPlatform(database.db, (trx) =>
      trx.selectFrom("log_stream_deliveries").select("lease_owner").where("log_stream_id", "=", streamId).executeTakeFirst(),
    );
    return row?.lease_owner ?? null;
  }
});
