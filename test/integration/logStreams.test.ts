import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { withPlatform } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { startLogReceivers, type LogReceivers } from "../fakes/logReceivers.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { waitFor } from "../testkit/waitFor.ts";

// A tenant's admin sends its log to a webhook, Splunk and Datadog (local HTTPS fakes that check what
// the real ones check): every event in order, from the stream's creation on; health that follows the
// receiver's answers; refusals that stop and an update that resumes; secrets that never leave.

let receivers: LogReceivers;
let app: TestApp;
let dir: string;

beforeAll(async () => {
  receivers = await startLogReceivers();
  dir = mkdtempSync(path.join(tmpdir(), "kp-streams-"));
  writeFileSync(path.join(dir, "ca.pem"), receivers.caPem);
  app = await createTestApp({
    name: "log-streams",
    env: {
      LOG_STREAM_ALLOWED_HOSTS: "127.0.0.1",
      LOG_STREAM_CA_FILE: path.join(dir, "ca.pem"),
      LOG_STREAM_RETRY_MAX_SECONDS: "2",
      LOG_STREAM_BATCH_SIZE: "50",
    },
  });
});
afterAll(async () => {
  await app?.close();
  await receivers?.close();
  rmSync(dir, { recursive: true, force: true });
});

const STREAM_FIELDS = `id name kind destination settings filter { types securityOnly } secretFingerprint state health lastError
  deliveredSequence lagEvents lagSeconds failedAttempts lastSuccessAt nextAttemptAt`;
const CREATE = `mutation ($input: CreateLogStreamInput!) { createLogStream(input: $input) { secret logStream { ${STREAM_FIELDS} } } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateLogStreamInput!) { updateLogStream(id: $id, input: $input) { ${STREAM_FIELDS} } }`;
const STREAM = `query ($id: ID!) { logStream(id: $id) { ${STREAM_FIELDS} } }`;
const LIST = `{ logStreams { ${STREAM_FIELDS} } }`;

const codeOf = (res: { errors?: { extensions?: Record<string, unknown> }[] }) => res.errors?.[0]?.extensions?.code;

async function create(t: SeededTenant, input: Record<string, unknown>) {
  const res = await app.gql(CREATE, { input }, { token: t.tokens.admin });
  expect(res.errors).toBeUndefined();
  registerSecret(res.data.createLogStream.secret);
  return res.data.createLogStream as { secret: string | null; logStream: any };
}

async function streamOf(t: SeededTenant, id: string) {
  const res = await app.gql(STREAM, { id }, { token: t.tokens.admin });
  expect(res.errors).toBeUndefined();
  return res.data.logStream;
}

/** `count` events appended to the tenant's log through the store's write path (security events). */
async function appendEventsTo(tenantId: string, count: number, note = "test"): Promise<void> {
  for (let i = 0; i < count; i++) {
    await appendEvents(app.kp.deps.db, {
      tenantId,
      streamType: "security",
      streamId: "access.denied",
      expectedVersion: "any",
      events: [AccessDenied({ level: "warning", status: "denied", reason: note, resource: "graphql", action: "agent:write", details: { n: i } })],
      metadata: { actor: { subject: "someone", kind: "user", roles: ["viewer"] } },
      occurredAt: new Date(),
    });
  }
}

async function headOf(tenantId: string): Promise<number> {
  const row = await withPlatform(app.kp.deps.db, (trx) =>
    trx.selectFrom("tenant_heads").select("last_seq").where("tenant_id", "=", tenantId).executeTakeFirst(),
  );
  return Number(row?.last_seq ?? 0);
}

async function tenantLog(t: SeededTenant, type?: string) {
  const res = await app.gql(
    `query ($types: [String!]) { auditLog(first: 100, filter: { types: $types }) { nodes { sequence type data } } }`,
    type ? { types: [type] } : {},
    {
      token: t.tokens.admin,
    },
  );
  expect(res.errors).toBeUndefined();
  return res.data.auditLog.nodes as { sequence: number; type: string; data: Record<string, unknown> }[];
}

const sequenceOf = (delivered: { event: unknown }) => (delivered.event as { sequence: number }).sequence;
const sequencesOf = (events: { event: unknown }[]) => events.map(sequenceOf);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("a webhook log stream", () => {
  it("delivers every event from its creation on, in order, signed, and turns healthy", async () => {
    const t = await app.seedTenant();
    const endpoint = `ordered-${randomUUID()}`;
    // The receiver learns the secret from the answer, as an admin would paste it.
    const created = await create(t, { name: "SIEM", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}?token=query-secret-123` });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);
    const stream = created.logStream;
    expect(stream).toMatchObject({ name: "SIEM", kind: "webhook", state: "active", health: "pending", destination: `${receivers.url}/webhook/****` });
    expect(stream.secretFingerprint).toMatch(/^sha256:[0-9a-f]{16}$/);
    receivers.webhookEndpoint(endpoint, [created.secret!]);

    const createdAt = (await tenantLog(t, "log_stream.created")).at(-1)!.sequence;
    await appendEventsTo(t.tenantId, 120);
    const head = await headOf(t.tenantId);
    // Up to head (the stream's own health event may follow), each event once, in order.
    const got = (await waitForSequences(endpoint, head)).filter((d) => d.logStreamId === stream.id && sequenceOf(d) <= head);
    expect(sequencesOf(got)).toEqual(range(createdAt, head));
    for (const delivered of got) {
      expect(delivered.tenantId).toBe(t.tenantId);
      expect(delivered.event).toMatchObject({ kind: "event", tenantId: t.tenantId });
      expect(delivered.event).toHaveProperty("contentHash");
      expect(delivered.event).toHaveProperty("chainHash");
      expect(delivered.event).toHaveProperty("eventId");
    }
    // One message id per batch, the same on each attempt: batches of at most 50.
    const batches = new Set(got.map((d) => d.webhookId));
    expect(batches.size).toBeGreaterThanOrEqual(Math.ceil(got.length / 50));

    const after = await waitFor("healthy", async () => {
      const s = await streamOf(t, stream.id);
      return s.health === "healthy" && s.lagEvents <= 1 && s;
    });
    expect(after.lastSuccessAt).not.toBeNull();
    const health = await tenantLog(t, "log_stream.health_changed");
    expect(health.map((e) => [e.data.from, e.data.to])).toContainEqual(["pending", "healthy"]);
  });

  it("rides out 503, 429 with Retry-After and a reset connection, reporting degraded, then healthy, losing nothing", async () => {
    const t = await app.seedTenant();
    const endpoint = `faults-${randomUUID()}`;
    const { secret, logStream } = await create(t, { name: "flaky", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` });
    receivers.webhookEndpoint(endpoint, [secret!]);
    const first = (await tenantLog(t, "log_stream.created")).at(-1)!.sequence;
    await waitForSequences(endpoint, first);
    receivers.fail("webhook", { status: 503 }, { status: 429, retryAfter: 1 }, { reset: true });
    await appendEventsTo(t.tenantId, 30);
    const degraded = await waitFor("degraded", async () => {
      const s = await streamOf(t, logStream.id);
      return s.health === "degraded" && s;
    });
    expect(degraded.lastError).toMatch(/503|429|reset|connection/i);
    const head = await headOf(t.tenantId);
    await waitFor("healthy again", async () => (await streamOf(t, logStream.id)).health === "healthy", 30_000);
    const got = receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id);
    // Accepted events: each once, in order (a refused attempt delivered nothing).
    const sequences = sequencesOf(got);
    expect(sequences.slice(0, head - first + 1)).toEqual(range(first, head));
    const transitions = (await tenantLog(t, "log_stream.health_changed")).map((e) => [e.data.from, e.data.to]);
    expect(transitions).toEqual(
      expect.arrayContaining([
        ["healthy", "degraded"],
        ["degraded", "healthy"],
      ]),
    );
    // The receiver was asked again only after Retry-After: at least a second after the 429.
    const attempts = receivers.attempts("webhook");
    expect(attempts.some((a) => a.status === 429)).toBe(true);
  });

  it("stops at a refusal with the receiver's answer, without our secrets, and an update resumes it", async () => {
    const t = await app.seedTenant();
    const endpoint = `refused-${randomUUID()}`;
    const { secret, logStream } = await create(t, { name: "refusing", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}?key=very-secret-query` });
    receivers.webhookEndpoint(endpoint, [secret!]);
    const created = (await tenantLog(t, "log_stream.created")).at(-1)!.sequence;
    await waitForSequences(endpoint, created);
    receivers.fail("webhook", { status: 401, body: `no such key very-secret-query ${secret}` });
    await appendEventsTo(t.tenantId, 3);
    const stopped = await waitFor("error", async () => {
      const s = await streamOf(t, logStream.id);
      return s.health === "error" && s;
    });
    expect(stopped.lastError).toContain("401");
    expect(stopped.lastError).not.toContain("very-secret-query");
    expect(stopped.lastError).not.toContain(secret);
    const attemptsAtStop = receivers.attempts("webhook").length;
    await appendEventsTo(t.tenantId, 3);
    // No retry while in error: a claim period passes without an attempt.
    await new Promise((r) => setTimeout(r, 300));
    expect(receivers.attempts("webhook").length).toBe(attemptsAtStop);
    const errorEvent = (await tenantLog(t, "log_stream.health_changed")).find((e) => e.data.to === "error")!;
    expect(JSON.stringify(errorEvent.data)).not.toContain(secret);
    expect(JSON.stringify(errorEvent.data)).not.toContain("very-secret-query");

    const updated = await app.gql(UPDATE, { id: logStream.id, input: { name: "fixed" } }, { token: t.tokens.admin });
    expect(updated.errors).toBeUndefined();
    expect(updated.data.updateLogStream.health).toBe("pending");
    const head = await headOf(t.tenantId);
    const got = await waitForSequences(endpoint, head);
    expect(sequencesOf(got.filter((d) => d.logStreamId === logStream.id && sequenceOf(d) <= head))).toEqual(range(created, head));
  });

  it("signs with both secrets during a rotation's overlap, and with the new one only after", async () => {
    const t = await app.seedTenant();
    const endpoint = `rotate-${randomUUID()}`;
    const { secret: first, logStream } = await create(t, { name: "rotating", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` });
    receivers.webhookEndpoint(endpoint, [first!]);
    await waitForSequences(endpoint, (await tenantLog(t, "log_stream.created")).at(-1)!.sequence);

    const ROTATE = `mutation ($id: ID!, $overlap: Int) { rotateLogStreamSecret(id: $id, overlapSeconds: $overlap) { secret logStream { secretFingerprint } } }`;
    const rotated = await app.gql(ROTATE, { id: logStream.id, overlap: 3600 }, { token: t.tokens.admin });
    expect(rotated.errors).toBeUndefined();
    const second = rotated.data.rotateLogStreamSecret.secret as string;
    registerSecret(second);
    expect(second).not.toBe(first);
    expect(rotated.data.rotateLogStreamSecret.logStream.secretFingerprint).not.toBe(logStream.secretFingerprint);
    // A receiver still on the old secret, and one already on the new one, both accept during the overlap.
    await appendEventsTo(t.tenantId, 2);
    let head = await headOf(t.tenantId);
    const old = await waitForSequences(endpoint, head);
    expect(old.at(-1)!.matchedSecret).toBe(first);
    receivers.webhookEndpoint(endpoint, [second]);
    await appendEventsTo(t.tenantId, 2);
    head = await headOf(t.tenantId);
    const fresh = await waitForSequences(endpoint, head);
    expect(fresh.at(-1)!.matchedSecret).toBe(second);

    // Without overlap, the old secret stops signing at once: a receiver that only knows it refuses.
    const third = await app.gql(ROTATE, { id: logStream.id, overlap: 0 }, { token: t.tokens.admin });
    registerSecret(third.data.rotateLogStreamSecret.secret);
    receivers.webhookEndpoint(endpoint, [second]);
    await appendEventsTo(t.tenantId, 1);
    await waitFor("a refusal of the new signature", () =>
      receivers.attempts("webhook").some((a) => a.path.includes(endpoint) && a.refusal === "bad-signature"),
    );
    const rotations = await tenantLog(t, "log_stream.secret_rotated");
    expect(rotations).toHaveLength(2);
    for (const r of rotations) expect(JSON.stringify(r.data)).not.toMatch(/whsec_/);
  });

  it("pauses, resumes and replays a range (receivers deduplicate by event id)", async () => {
    const t = await app.seedTenant();
    const endpoint = `replay-${randomUUID()}`;
    const { secret, logStream } = await create(t, { name: "replayed", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` });
    receivers.webhookEndpoint(endpoint, [secret!]);
    const created = (await tenantLog(t, "log_stream.created")).at(-1)!.sequence;
    await appendEventsTo(t.tenantId, 5);
    await waitForSequences(endpoint, await headOf(t.tenantId));

    const paused = await app.gql(`mutation ($id: ID!) { pauseLogStream(id: $id) { state } }`, { id: logStream.id }, { token: t.tokens.admin });
    expect(paused.data.pauseLogStream.state).toBe("paused");
    const before = receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id).length;
    await appendEventsTo(t.tenantId, 5);
    const lagging = await streamOf(t, logStream.id);
    expect(lagging.lagEvents).toBeGreaterThanOrEqual(5);
    expect(receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id).length).toBe(before);

    const resumed = await app.gql(`mutation ($id: ID!) { resumeLogStream(id: $id) { state } }`, { id: logStream.id }, { token: t.tokens.admin });
    expect(resumed.data.resumeLogStream.state).toBe("active");
    const head = await headOf(t.tenantId);
    await waitForSequences(endpoint, head);

    const replay = await app.gql(
      `mutation ($id: ID!, $from: Int!) { replayLogStream(id: $id, from: $from) { deliveredSequence } }`,
      { id: logStream.id, from: created + 1 },
      {
        token: t.tokens.admin,
      },
    );
    expect(replay.errors).toBeUndefined();
    const end = await headOf(t.tenantId);
    await waitFor("the replay", () => {
      const seen = sequencesOf(receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id));
      return seen.filter((s) => s === created + 1).length === 2 && seen.includes(end);
    });
    const all = sequencesOf(receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id));
    // Deduplicated by sequence, the receiver holds every event once, created..end.
    expect([...new Set(all)].sort((a, b) => a - b)).toEqual(range(created, end));

    const beyond = await app.gql(`mutation ($id: ID!) { replayLogStream(id: $id, from: 999999) { id } }`, { id: logStream.id }, { token: t.tokens.admin });
    expect(codeOf(beyond)).toBe("BAD_USER_INPUT");
  });
});

describe("ten thousand events through faults", () => {
  it("arrive complete and in order (first arrivals), whatever the receiver answered on the way", async () => {
    const t = await app.seedTenant();
    const endpoint = `bulk-${randomUUID()}`;
    const { secret, logStream } = await create(t, { name: "bulk", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` });
    receivers.webhookEndpoint(endpoint, [secret!]);
    const created = (await tenantLog(t, "log_stream.created")).at(-1)!.sequence;
    const mine = () => receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id);
    // Eight writers append while the stream delivers; faults are queued as the receiver fills.
    let written = 0;
    const writers = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (written < 10_000) {
          written++;
          await appendEventsTo(t.tenantId, 1, "bulk");
        }
      }),
    );
    const faults: Parameters<LogReceivers["fail"]>[1][] = [{ status: 503 }, { status: 429, retryAfter: 1 }, { reset: true }, { delayMs: 300 }, { status: 502 }];
    for (const [i, fault] of faults.entries()) {
      await waitFor(`${(i + 1) * 1500} accepted`, () => mine().length >= (i + 1) * 1500, 60_000);
      receivers.fail("webhook", fault);
    }
    await writers;
    const head = await headOf(t.tenantId);
    await waitFor("every event", () => sequencesOf(mine()).includes(head), 60_000);
    const sequences = sequencesOf(mine()).filter((s) => s <= head);
    const firstArrivals = sequences.filter((s, i) => sequences.indexOf(s) === i);
    expect(firstArrivals).toEqual(range(created, head));
    expect(firstArrivals.length).toBeGreaterThanOrEqual(10_000);
    // Refused attempts carried nothing accepted: no event twice.
    expect(sequences.length).toBe(firstArrivals.length);
    expect(receivers.attempts("webhook").filter((a) => a.fault && a.path.endsWith(endpoint)).length).toBe(faults.length);
  }, 180_000);
});

describe("Splunk and Datadog log streams", () => {
  it("sends HEC events with the token, index, source and sourcetype", async () => {
    const t = await app.seedTenant();
    registerSecret(receivers.splunkToken);
    const { secret, logStream } = await create(t, {
      name: "splunk",
      kind: "splunk",
      url: receivers.url,
      secret: receivers.splunkToken,
      settings: { index: "keyplane_audit", source: "keyplane-test", sourcetype: "keyplane:audit" },
    });
    expect(secret).toBeNull();
    expect(logStream.destination).toBe(`${receivers.url}/services/collector/event`);
    await appendEventsTo(t.tenantId, 10);
    const head = await headOf(t.tenantId);
    const got = await waitFor("splunk events", () => {
      const mine = receivers.accepted("splunk").filter((d) => (d.event as { tenantId: string }).tenantId === t.tenantId);
      return sequencesOf(mine).includes(head) && mine;
    });
    expect(got[0]).toMatchObject({ index: "keyplane_audit", source: "keyplane-test", sourcetype: "keyplane:audit", host: "keyplane" });
    const created = (await tenantLog(t, "log_stream.created")).at(-1)!.sequence;
    expect(sequencesOf(got).filter((s) => s <= head)).toEqual(range(created, head));
  });

  it("sends Datadog entries with the API key, service and tags", async () => {
    const t = await app.seedTenant();
    registerSecret(receivers.datadogApiKey);
    const { logStream } = await create(t, {
      name: "datadog",
      kind: "datadog",
      url: receivers.url,
      secret: receivers.datadogApiKey,
      settings: { service: "keyplane-test", ddsource: "keyplane", ddtags: "env:test" },
    });
    expect(logStream.destination).toBe(`${receivers.url}/api/v2/logs`);
    await appendEventsTo(t.tenantId, 10);
    const head = await headOf(t.tenantId);
    const got = await waitFor("datadog entries", () => {
      const mine = receivers.accepted("datadog").filter((d) => (d.event as { tenantId: string }).tenantId === t.tenantId);
      return sequencesOf(mine).includes(head) && mine;
    });
    expect(got[0]).toMatchObject({ service: "keyplane-test", ddsource: "keyplane", ddtags: `tenant:${t.tenantId},env:test` });
  });

  it("a wrong Splunk token is refused by the receiver: error, and a new token resumes delivery", async () => {
    const t = await app.seedTenant();
    const wrong = `wrong-${randomUUID()}`;
    registerSecret(wrong);
    const { logStream } = await create(t, { name: "bad token", kind: "splunk", url: receivers.url, secret: wrong });
    const stopped = await waitFor("error", async () => {
      const s = await streamOf(t, logStream.id);
      return s.health === "error" && s;
    });
    expect(stopped.lastError).toMatch(/403|401|Invalid token/);
    expect(stopped.lastError).not.toContain(wrong);
    const fixed = await app.gql(UPDATE, { id: logStream.id, input: { secret: receivers.splunkToken } }, { token: t.tokens.admin });
    expect(fixed.errors).toBeUndefined();
    expect(fixed.data.updateLogStream.secretFingerprint).not.toBe(logStream.secretFingerprint);
    await waitFor("healthy", async () => (await streamOf(t, logStream.id)).health === "healthy");
  });
});

describe("filters", () => {
  it("a security-only stream carries only auth.failed and access.denied, and its cursor passes the rest", async () => {
    const t = await app.seedTenant();
    const endpoint = `security-${randomUUID()}`;
    const { secret, logStream } = await create(t, {
      name: "security",
      kind: "webhook",
      url: `${receivers.url}/webhook/${endpoint}`,
      filter: { securityOnly: true },
    });
    receivers.webhookEndpoint(endpoint, [secret!]);
    // Events of other types in between: an agent created by the admin.
    const agent = await app.gql(`mutation { createAgent(input: { name: "a1", type: "coder" }) { id } }`, {}, { token: t.tokens.admin });
    expect(agent.errors).toBeUndefined();
    await appendEventsTo(t.tenantId, 3);
    const head = await headOf(t.tenantId);
    await waitFor("caught up", async () => (await streamOf(t, logStream.id)).deliveredSequence >= head);
    const got = receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id);
    expect(got.length).toBe(3);
    expect(new Set(got.map((d) => (d.event as { type: string }).type))).toEqual(new Set(["access.denied"]));
  });
});

describe("what may be a destination", () => {
  it("refuses http, credentials in the URL, private, loopback and link-local addresses (localhost resolves to 127.0.0.1), storing nothing", async () => {
    const t = await app.seedTenant();
    const port = new URL(receivers.url).port;
    for (const url of [
      `http://127.0.0.1:${port}/webhook/x`,
      `https://user:pass@127.0.0.1:${port}/webhook/x`,
      `https://localhost:${port}/webhook/x`,
      "https://10.1.2.3/hook",
      "https://169.254.169.254/latest/meta-data",
      "https://[::1]/hook",
      "https://192.168.0.10/hook",
      "https://no-such-host.invalid/hook",
      "not a url",
    ]) {
      const res = await app.gql(CREATE, { input: { name: "ssrf", kind: "webhook", url } }, { token: t.tokens.admin });
      expect(codeOf(res), url).toBe("BAD_USER_INPUT");
      expect(res.errors![0]!.extensions!.field, url).toBe("url");
    }
    expect((await app.gql(LIST, {}, { token: t.tokens.admin })).data.logStreams).toEqual([]);
    expect(await tenantLog(t, "log_stream.created")).toEqual([]);
  });

  it("refuses bad settings, filters, secrets and a missing token with stable codes", async () => {
    const t = await app.seedTenant();
    const cases: Record<string, unknown>[] = [
      { name: "x", kind: "splunk", url: receivers.url },
      { name: "x", kind: "splunk", url: receivers.url, secret: "short" },
      { name: "x", kind: "splunk", url: receivers.url, secret: "has spaces in it", settings: {} },
      { name: "x", kind: "splunk", url: receivers.url, secret: randomUUID(), settings: { index: "Bad Index" } },
      { name: "x", kind: "datadog", secret: randomUUID(), settings: { site: "example.com" } },
      { name: "x", kind: "webhook", url: `${receivers.url}/webhook/x`, secret: "whsec_mine" },
      { name: "x", kind: "webhook", url: `${receivers.url}/webhook/x`, settings: { index: "main" } },
      { name: "x", kind: "webhook", url: `${receivers.url}/webhook/x`, filter: { types: ["not a type"] } },
      { name: "", kind: "webhook", url: `${receivers.url}/webhook/x` },
      { name: "x".repeat(101), kind: "webhook", url: `${receivers.url}/webhook/x` },
    ];
    for (const input of cases) {
      const res = await app.gql(CREATE, { input }, { token: t.tokens.admin });
      expect(codeOf(res), JSON.stringify(input)).toBe("BAD_USER_INPUT");
    }
    expect(await tenantLog(t, "log_stream.created")).toEqual([]);
  });
});

describe("who may manage log streams", () => {
  it("admins only; another tenant's admin sees nothing and changes nothing, and a stream carries its own tenant's events only", async () => {
    const a = await app.seedTenant();
    const b = await app.seedTenant();
    const endpoint = `isolated-${randomUUID()}`;
    const { secret, logStream } = await create(a, { name: "a's", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` });
    receivers.webhookEndpoint(endpoint, [secret!]);

    for (const role of ["viewer", "editor", "service"] as const) {
      const list = await app.gql(LIST, {}, { token: a.tokens[role] });
      expect(codeOf(list), role).toBe("FORBIDDEN");
      const made = await app.gql(CREATE, { input: { name: "x", kind: "webhook", url: `${receivers.url}/webhook/x` } }, { token: a.tokens[role] });
      expect(codeOf(made), role).toBe("FORBIDDEN");
    }
    expect((await app.gql(LIST, {}, { token: b.tokens.admin })).data.logStreams).toEqual([]);
    expect((await app.gql(STREAM, { id: logStream.id }, { token: b.tokens.admin })).data.logStream).toBeNull();
    for (const [mutation, vars] of [
      [`mutation ($id: ID!) { pauseLogStream(id: $id) { id } }`, {}],
      [`mutation ($id: ID!) { resumeLogStream(id: $id) { id } }`, {}],
      [`mutation ($id: ID!) { deleteLogStream(id: $id) }`, {}],
      [`mutation ($id: ID!) { replayLogStream(id: $id, from: 1) { id } }`, {}],
      [`mutation ($id: ID!) { rotateLogStreamSecret(id: $id) { secret } }`, {}],
      [UPDATE, { input: { name: "mine now" } }],
    ] as const) {
      const res = await app.gql(mutation, { id: logStream.id, ...vars }, { token: b.tokens.admin });
      expect(codeOf(res), mutation).toBe("NOT_FOUND");
    }
    expect(await streamOf(a, logStream.id)).toMatchObject({ name: "a's", state: "active" });

    await appendEventsTo(b.tenantId, 5);
    await appendEventsTo(a.tenantId, 2);
    await waitForSequences(endpoint, await headOf(a.tenantId));
    for (const d of receivers.accepted("webhook").filter((x) => x.logStreamId === logStream.id)) {
      expect((d.event as { tenantId: string }).tenantId).toBe(a.tenantId);
    }
  });

  it("deleting stops delivery and forgets the destination; the limit per tenant holds", async () => {
    const t = await app.seedTenant();
    const endpoint = `deleted-${randomUUID()}`;
    const { secret, logStream } = await create(t, { name: "gone", kind: "webhook", url: `${receivers.url}/webhook/${endpoint}` });
    receivers.webhookEndpoint(endpoint, [secret!]);
    await waitForSequences(endpoint, await headOf(t.tenantId));
    const res = await app.gql(`mutation ($id: ID!) { deleteLogStream(id: $id) }`, { id: logStream.id }, { token: t.tokens.admin });
    expect(res.data.deleteLogStream).toBe(true);
    const count = receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id).length;
    await appendEventsTo(t.tenantId, 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(receivers.accepted("webhook").filter((d) => d.logStreamId === logStream.id).length).toBe(count);
    const secrets = await withPlatform(app.kp.deps.db, (trx) =>
      trx.selectFrom("log_stream_secrets").selectAll().where("log_stream_id", "=", logStream.id).execute(),
    );
    expect(secrets).toEqual([]);
    expect((await app.gql(LIST, {}, { token: t.tokens.admin })).data.logStreams).toEqual([]);

    for (let i = 0; i < 10; i++) await create(t, { name: `s${i}`, kind: "webhook", url: `${receivers.url}/webhook/limit-${i}` });
    const over = await app.gql(CREATE, { input: { name: "one too many", kind: "webhook", url: `${receivers.url}/webhook/over` } }, { token: t.tokens.admin });
    expect(codeOf(over)).toBe("CONFLICT");
  });

  it("reports health and lag in /metrics", async () => {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toMatch(/keyplane_log_streams\{health="healthy"\} [1-9]/);
    expect(text).toMatch(/keyplane_log_stream_deliveries_total\{kind="webhook",outcome="delivered"\} [1-9]/);
    expect(text).toMatch(/keyplane_log_stream_events_delivered_total\{kind="splunk"\} [1-9]/);
    expect(text).toMatch(/keyplane_log_stream_lag_max_events \d+/);
  });
});

/** Waits until the endpoint accepted the event at `sequence`; returns what it accepted. */
async function waitForSequences(endpoint: string, sequence: number) {
  return waitFor(`event ${sequence} at ${endpoint}`, () => {
    const got = receivers.accepted("webhook").filter((d) => d.endpoint === endpoint);
    return sequencesOf(got).includes(sequence) && got;
  });
}
