import { randomBytes } from "node:crypto";
import net from "node:net";
import WebSocket from "ws";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessDenied } from "../../src/domain/security/events.ts";
import { encodeCursor } from "../../src/graphql/pagination.ts";
import { withTenant } from "../../src/store/db.ts";
import { appendEvents } from "../../src/store/events/appendEvents.ts";
import { range, sequencesOf, subscribeEvents, TENANT_EVENTS, type EventSubscriber } from "../testkit/eventSubscriber.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { waitFor } from "../testkit/waitFor.ts";

// tenantEvents: replay from a cursor, then live, over graphql-ws and SSE; sockets that follow their
// token; slow consumers dropped without slowing anyone; limits per principal and per socket.

let app: TestApp;
const open: EventSubscriber[] = [];

beforeAll(async () => {
  app = await createTestApp({
    name: "tenant-events",
    env: { WS_TOKEN_CHECK_SECONDS: "1", WS_MAX_SOCKETS_PER_PRINCIPAL: "3", WS_MAX_SUBSCRIPTIONS_PER_SOCKET: "2", EVENT_FEED_POLL_MS: "500" },
  });
});
afterAll(async () => {
  await Promise.all(open.map((s) => s.dispose()));
  await app?.close();
});

function subscribe(token: string, variables: { after?: string; types?: string[] } = {}, url = app.url) {
  const subscriber = subscribeEvents(url, token, variables);
  open.push(subscriber);
  return subscriber;
}

/** Appends n events to the tenant's log through the one write path, as any use case does. */
async function append(tenantId: string, n: number, reason = "test", details?: Record<string, unknown>) {
  const events = Array.from({ length: n }, () => AccessDenied({ level: "info", status: "denied", reason, details }));
  const stored = await withTenant(app.kp.deps.db, tenantId, (trx) =>
    appendEvents(trx, {
      tenantId,
      streamType: "test",
      streamId: "bulk",
      expectedVersion: "any",
      events,
      metadata: { actor: { subject: "tests", kind: "system", roles: [] } },
      occurredAt: new Date(),
    }),
  );
  return stored.map((e) => e.sequence);
}

async function lastSequence(t: SeededTenant, on: TestApp = app): Promise<number> {
  const res = await on.gql(`{ auditLog(first: 1, order: NEWEST_FIRST) { edges { node { sequence } } } }`, {}, { token: t.tokens.admin });
  return res.data.auditLog.edges[0].node.sequence;
}

const fromStart = encodeCursor("seq", 0);

/** The tenant's admin revokes the token. */
async function revokeToken(t: SeededTenant, token: string) {
  const revoked = await app.gql(`mutation ($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId } }`, { id: decodeJwt(token).jti }, { token: t.tokens.admin });
  expect(revoked.errors).toBeUndefined();
}

/** tenantEvents over SSE: the messages as they arrive, and `ended` once the server ends the stream. */
async function subscribeSse(token: string, variables: { after?: string } = {}) {
  const res = await fetch(`${app.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: TENANT_EVENTS, variables }),
  });
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const reader = res.body!.getReader();
  const messages: any[] = [];
  const ended = (async () => {
    let text = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      text += new TextDecoder().decode(value);
      for (let i = text.indexOf("\n\n"); i !== -1; i = text.indexOf("\n\n")) {
        const block = text.slice(0, i);
        text = text.slice(i + 2);
        const data = block.split("\n").find((l) => l.startsWith("data:"));
        if (data && block.includes("event: next")) messages.push(JSON.parse(data.slice(5)));
      }
    }
  })();
  return {
    messages,
    ended,
    async until(check: (m: any[]) => boolean, timeoutMs = 10_000) {
      await waitFor(
        "SSE messages",
        () => check(messages),
        timeoutMs,
        () => `${messages.length} messages: ${JSON.stringify(messages.slice(-3))}`,
      );
    },
    cancel: () => reader.cancel(),
  };
}

describe("tenantEvents", () => {
  it("replays everything after the cursor, then continues live with no gap and no duplicate", async () => {
    const t = await app.seedTenant({ tier: "enterprise" });
    await append(t.tenantId, 30);
    const head = await lastSequence(t);
    const s = subscribe(t.tokens.service, { after: fromStart });
    await s.until((e) => e.length >= head);
    // Appends race the subscription's switch from replay to live.
    const appending = Promise.all([append(t.tenantId, 40), append(t.tenantId, 40), append(t.tenantId, 40)]);
    await appending;
    const created = await app.gql(`mutation { createAgent(input: { name: "live", type: "coder" }) { id } }`, {}, { token: t.tokens.editor });
    expect(created.errors).toBeUndefined();
    const total = head + 121;
    await s.until((e) => e.length >= total);
    expect(sequencesOf(s.events)).toEqual(range(1, total));
    const last = s.events.at(-1)!;
    expect(last).toMatchObject({ type: "agent.created", streamType: "agent", streamId: created.data.createAgent.id, actor: `editor@${t.tenantId}` });
    expect(last.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(last.chainHash).toMatch(/^[0-9a-f]{64}$/);
    expect(last.data.agentName).toBe("live");
    // The cursor is the one auditLog pages with.
    const page = await app.gql(
      `query ($after: String) { auditLog(first: 1, after: $after) { edges { node { sequence } } } }`,
      { after: s.events.at(-2)!.cursor },
      { token: t.tokens.admin },
    );
    expect(page.data.auditLog.edges[0].node.sequence).toBe(total);
  });

  it("without a cursor starts at the present; with types, sends only those", async () => {
    const t = await app.seedTenant();
    await append(t.tenantId, 5);
    const head = await lastSequence(t);
    const registered = await liveSubscribers();
    const fromNow = subscribe(t.tokens.service);
    const onlyAgents = subscribe(t.tokens.service, { after: fromStart, types: ["agent.created", "enrollment_key.created"] });
    // "From now" is the head the subscription reads as it registers, after the connection's ack.
    await untilLiveSubscribers(registered + 2);
    await append(t.tenantId, 3);
    await app.gql(`mutation { createAgent(input: { name: "a1", type: "coder" }) { id } }`, {}, { token: t.tokens.editor });
    await fromNow.until((e) => e.length >= 4);
    expect(sequencesOf(fromNow.events)).toEqual(range(head + 1, head + 4));
    await onlyAgents.until((e) => e.length >= 1);
    expect(onlyAgents.events.map((e) => e.type)).toEqual(["agent.created"]);
    expect(onlyAgents.events[0]!.sequence).toBe(head + 4);
  });

  it("this process's own appends reach its subscribers from memory, without a read, each member for member what the store holds", async () => {
    const t = await app.seedTenant({ tier: "enterprise" });
    const registered = await liveSubscribers();
    const s = subscribe(t.tokens.service);
    await untilLiveSubscribers(registered + 1);
    const feed = app.kp.deps.events.stats;
    const readsBefore = feed.liveReads;
    // Members in an order jsonb does not keep, nested, and non-ASCII keys: what memory hands over must equal a read.
    const details = { zeta: 1, a: { b2: [{ y: 1, x: 2 }], b1: "é" }, "10": true, éa: null, ab: "x" };
    // Alone (each its own statement), concurrently (sharing statements), and in a caller's transaction.
    const alone = (n: number) =>
      Array.from({ length: n }, () =>
        appendEvents(app.kp.deps.db, {
          tenantId: t.tenantId,
          streamType: "test",
          streamId: "memory",
          expectedVersion: "any",
          events: [AccessDenied({ level: "info", status: "denied", reason: "memory", details })],
          metadata: { actor: { subject: "tests", kind: "system", roles: [] } },
          occurredAt: new Date(),
        }),
      );
    await Promise.all([...alone(20), append(t.tenantId, 5, "memory", details), ...alone(20)]);
    const head = await lastSequence(t);
    const live = await s.until((e) => e.length >= 45);
    expect(sequencesOf(live)).toEqual(range(head - 44, head));
    expect(feed.liveReads).toBe(readsBefore);
    const stored = await app.gql(
      `query ($after: String) { auditLog(first: 100, after: $after) { nodes { sequence cursor type streamType streamId streamVersion occurredAt actor data contentHash chainHash } } }`,
      { after: encodeCursor("seq", head - 45) },
      { token: t.tokens.admin },
    );
    expect(JSON.stringify(live)).toBe(JSON.stringify(stored.data.auditLog.nodes));
  });

  it("delivers the appends of two processes on one database to subscribers of both, dense and in order", async () => {
    const t = await app.seedTenant({ tier: "enterprise" });
    const second = await createTestApp({ name: "tenant-events-second", database: app.database, env: { EVENT_FEED_POLL_MS: "500" } });
    try {
      // Each process signs its own tokens (a key of its own here).
      const secondToken = await second.mintToken({ tenantId: t.tenantId, roles: ["service"] });
      const start = await lastSequence(t);
      const onFirst = subscribe(t.tokens.service, { after: encodeCursor("seq", start) });
      const onSecond = subscribe(secondToken, { after: encodeCursor("seq", start) }, second.url);
      await Promise.all([onFirst.connected, onSecond.connected]);
      const through = (on: TestApp, n: number) =>
        Array.from({ length: n }, () =>
          appendEvents(on.kp.deps.db, {
            tenantId: t.tenantId,
            streamType: "test",
            streamId: "two",
            expectedVersion: "any",
            events: [AccessDenied({ level: "info", status: "denied", reason: "two" })],
            metadata: { actor: { subject: "tests", kind: "system", roles: [] } },
            occurredAt: new Date(),
          }),
        );
      await Promise.all([...through(app, 30), ...through(second, 30), append(t.tenantId, 10), ...through(second, 10)]);
      const total = 80;
      for (const s of [onFirst, onSecond]) {
        await s.until((e) => e.length >= total);
        expect(sequencesOf(s.events)).toEqual(range(start + 1, start + total));
      }
    } finally {
      await second.close();
    }
  });

  it("a client that reconnects with its last cursor gets exactly what it missed", async () => {
    const t = await app.seedTenant();
    const first = subscribe(t.tokens.service, { after: fromStart });
    await append(t.tenantId, 10);
    const head = await lastSequence(t);
    await first.until((e) => e.length >= head);
    await first.dispose();
    const lastSeen = first.events.at(-1)!;
    await append(t.tenantId, 25);
    const again = subscribe(t.tokens.service, { after: lastSeen.cursor });
    await again.until((e) => e.length >= 25);
    await append(t.tenantId, 5);
    await again.until((e) => e.length >= 30);
    expect(sequencesOf(again.events)).toEqual(range(lastSeen.sequence + 1, lastSeen.sequence + 30));
  });

  it("another tenant's subscriber receives nothing of this tenant, whatever cursor it sends", async () => {
    const a = await app.seedTenant();
    const b = await app.seedTenant();
    const onB = subscribe(b.tokens.service, { after: fromStart });
    const onA = subscribe(a.tokens.service, { after: fromStart });
    await append(a.tenantId, 20, "tenant-a");
    await append(b.tenantId, 2, "tenant-b");
    await onA.until((e) => e.filter((x) => x.data.reason === "tenant-a").length >= 20);
    // A's events have reached A's subscribers; B's own marker, appended after them, reaches B, and nothing of A before it.
    await append(b.tenantId, 1, "tenant-b-marker");
    const bHead = await lastSequence(b);
    await onB.until((e) => e.some((x) => x.data.reason === "tenant-b-marker"));
    expect(onB.events.every((e) => e.data.reason !== "tenant-a")).toBe(true);
    expect(sequencesOf(onB.events)).toEqual(range(1, bHead));
    // A cursor taken from tenant A's stream is only a position: on B it reads B's log.
    const replay = subscribe(b.tokens.service, { after: onA.events[3]!.cursor });
    await replay.until((e) => e.length >= bHead - 4);
    expect(replay.events.every((e) => e.data.reason !== "tenant-a")).toBe(true);
  });

  it("gives a reader without event:subscribe the events of the areas it reads, and nothing else", async () => {
    const t = await app.seedTenant();
    const viewer = subscribe(t.tokens.viewer, { after: fromStart });
    const everything = subscribe(t.tokens.service, { after: fromStart });
    await append(t.tenantId, 2, "refusal-a-viewer-must-not-see");
    const created = await app.gql(`mutation { createAgent(input: { name: "watched", type: "ci" }) { id } }`, {}, { token: t.tokens.editor });
    expect(created.errors).toBeUndefined();
    await everything.until((e) => e.some((x) => x.type === "agent.created"));
    await viewer.until((e) => e.some((x) => x.type === "agent.created"));
    // What it receives is what `me` says it receives: the areas it reads, not the refusals or sessions.
    const me = await app.gql(`{ me { liveEventTypes } }`, {}, { token: t.tokens.viewer });
    const readable = new Set<string>(me.data.me.liveEventTypes);
    expect(readable.has("agent.online") && readable.has("tenant.created")).toBe(true);
    expect(readable.has("access.denied") || readable.has("session.started") || readable.has("credentials.read")).toBe(false);
    // In order, every one of those, and only those (the service gets every event).
    expect(everything.events.map((e) => e.type)).toContain("access.denied");
    expect(viewer.events.map((e) => e.sequence)).toEqual(everything.events.filter((e) => readable.has(e.type)).map((e) => e.sequence));
    expect(viewer.events.map((e) => e.type)).toEqual(expect.arrayContaining(["tenant.created", "agent.created"]));
  });

  it("is refused to a token that reads no area, for a type outside the caller's, and for bad arguments", async () => {
    const t = await app.seedTenant();
    // An auditor-only token (viewer narrowed to audit:read) reads the log, not the areas: no live events.
    const auditor = await app.mintToken({ tenantId: t.tenantId, roles: ["viewer"], scopes: ["audit:read"], subject: "auditor" });
    const refused = subscribe(auditor, { after: fromStart });
    await refused.ended;
    expect(refused.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const outside = subscribe(t.tokens.viewer, { types: ["agent.online", "auth.failed"] });
    await outside.ended;
    expect(outside.errors?.[0]).toMatchObject({ message: expect.stringContaining("auth.failed"), extensions: { code: "FORBIDDEN" } });
    const badCursor = subscribe(t.tokens.service, { after: "not-a-cursor" });
    await badCursor.ended;
    expect(badCursor.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const badTypes = subscribe(t.tokens.service, { types: ["DROP TABLE"] });
    await badTypes.ended;
    expect(badTypes.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });

  it("works over SSE too", async () => {
    const t = await app.seedTenant();
    const sse = await subscribeSse(t.tokens.service, { after: fromStart });
    await append(t.tenantId, 3);
    const head = await lastSequence(t);
    await sse.until((m) => m.length >= head);
    await sse.cancel();
    expect(sse.messages.map((m) => m.data.tenantEvents.sequence)).toEqual(range(1, head));
  });
});

describe("sockets follow their token", () => {
  it("a socket whose token is revoked is closed with 4403 within seconds, and a fresh token resumes from the cursor", async () => {
    const t = await app.seedTenant();
    const token = await app.mintToken({ tenantId: t.tenantId, roles: ["service"], subject: "svc-revoked" });
    const s = subscribe(token, { after: fromStart });
    await append(t.tenantId, 3);
    await s.until((e) => e.length >= 3);
    await revokeToken(t, token);
    const started = Date.now();
    await s.ended;
    expect(s.close).toEqual({ code: 4403, reason: "Token revoked" });
    expect(Date.now() - started).toBeLessThan(5000);
    const received = s.events.length;
    await append(t.tenantId, 4);
    const fresh = await app.mintToken({ tenantId: t.tenantId, roles: ["service"], subject: "svc-revoked" });
    const resumed = subscribe(fresh, { after: s.events.at(-1)!.cursor });
    const head = await lastSequence(t);
    await resumed.until((e) => e.length >= head - received);
    expect(sequencesOf([...s.events, ...resumed.events])).toEqual(range(1, head));
  });

  it("an SSE subscription whose token is revoked ends within seconds with UNAUTHENTICATED 'Token revoked'", async () => {
    const t = await app.seedTenant();
    const token = await app.mintToken({ tenantId: t.tenantId, roles: ["service"], subject: "svc-sse-revoked" });
    const sse = await subscribeSse(token, { after: fromStart });
    await append(t.tenantId, 2);
    await sse.until((m) => m.length >= 2);
    await revokeToken(t, token);
    const started = Date.now();
    await sse.ended;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(sse.messages.at(-1)).toMatchObject({ errors: [{ message: "Token revoked", extensions: { code: "UNAUTHENTICATED" } }] });
    // Nothing appended after the revocation reaches it: a subscriber with a valid token gets those
    // events, the revoked one does not.
    const before = sse.messages.length;
    const witness = subscribe(t.tokens.service, { after: fromStart });
    await append(t.tenantId, 2, "after-revocation");
    await witness.until((e) => e.filter((x) => x.data.reason === "after-revocation").length === 2);
    expect(sse.messages.length).toBe(before);
  });

  it("an SSE subscription ends when its token expires", async () => {
    const t = await app.seedTenant();
    // Minted directly: the API refuses lifetimes under a minute.
    const { token: shortLived } = await app.kp.deps.minter.mintAccessToken({
      tenantId: t.tenantId,
      subject: "svc-sse-expiring",
      kind: "service",
      roles: ["service"],
      scopes: [],
      issuedAt: new Date(),
      expiresAt: new Date(Date.now() + 2000),
    });
    registerSecret(shortLived);
    const expiring = await subscribeSse(shortLived, { after: fromStart });
    await expiring.until((m) => m.length >= 1);
    await expiring.ended;
    expect(expiring.messages.at(-1)).toMatchObject({ errors: [{ message: "Token expired", extensions: { code: "UNAUTHENTICATED" } }] });
  });

  it("a principal may hold a bounded number of sockets, and a socket a bounded number of subscriptions", async () => {
    const t = await app.seedTenant();
    const token = await app.mintToken({ tenantId: t.tenantId, roles: ["service"], subject: "svc-many" });
    const held = [subscribe(token), subscribe(token), subscribe(token)];
    await Promise.all(held.map((s) => s.connected));
    const fourth = subscribe(token);
    await fourth.ended;
    expect(fourth.close).toEqual({ code: 4029, reason: "Too many connections" });
    // Another principal of the same tenant is not affected.
    const other = subscribe(t.tokens.service);
    await other.connected;

    const ws = await rawSocket(t.tokens.admin);
    const replies: any[] = [];
    ws.on("message", (m) => replies.push(JSON.parse(String(m))));
    for (const id of ["1", "2", "3"]) ws.send(JSON.stringify({ id, type: "subscribe", payload: { query: TENANT_EVENTS } }));
    await waitFor("a reply to subscription 3", () => replies.some((r) => r.id === "3"));
    expect(replies.find((r) => r.id === "3")).toMatchObject({ type: "error", payload: [{ extensions: { code: "RATE_LIMITED" } }] });
    // Once one ends, there is room again.
    ws.send(JSON.stringify({ id: "1", type: "complete" }));
    // The server counts the operation as ended once its stream has stopped, after the message: ask
    // again until a subscription is admitted (each refused one ends at once, taking no room).
    let attempt = 3;
    await waitFor("a subscription admitted once one ended", async () => {
      const id = String(++attempt);
      ws.send(JSON.stringify({ id, type: "subscribe", payload: { query: TENANT_EVENTS, variables: { after: fromStart } } }));
      const reply = await waitFor(`a reply to subscription ${id}`, () => replies.find((r) => r.id === id));
      if (reply.type === "error") expect(reply).toMatchObject({ payload: [{ extensions: { code: "RATE_LIMITED" } }] });
      return reply.type === "next";
    });
    ws.close();
  });
});

describe("idle sockets", () => {
  it("a socket without any operation is closed after the idle timeout; one with a subscription stays", async () => {
    const idleApp = await createTestApp({ name: "idle-sockets", env: { WS_IDLE_TIMEOUT_SECONDS: "1", WS_TOKEN_CHECK_SECONDS: "1" }, database: app.database });
    try {
      const t = await idleApp.seedTenant();
      const busy = subscribeEvents(idleApp.url, t.tokens.service, { after: fromStart });
      open.push(busy);
      await busy.connected;
      // Opened after the busy one: the idle check that closes it is past the busy socket's timeout too.
      const idle = await rawSocket(t.tokens.service, idleApp.url);
      const closed = new Promise<{ code: number; reason: string }>((resolve) => idle.on("close", (code, reason) => resolve({ code, reason: String(reason) })));
      expect(await closed).toEqual({ code: 1000, reason: "Idle" });
      // The busy one still delivers what is appended now.
      await idleApp.mintToken({ tenantId: t.tenantId, roles: ["viewer"], subject: "after-idle-check" });
      await busy.until((e) => e.some((x) => x.data.subject === "after-idle-check"));
      expect(busy.close).toBeUndefined();
    } finally {
      await idleApp.close();
    }
  });
});

describe("slow consumers", () => {
  it("a subscriber that does not read is closed with 4008, and neither writers nor other subscribers wait for it", async () => {
    const slowApp = await createTestApp({
      name: "slow-consumer",
      env: { WS_SEND_BUFFER_BYTES: "65536", WS_SLOW_CONSUMER_SECONDS: "6" },
      database: app.database,
    });
    try {
      const t = await slowApp.seedTenant();
      const fast = subscribeEvents(slowApp.url, t.tokens.service, { after: fromStart });
      open.push(fast);
      // A client that subscribes and then stops reading: ws clients resume their own sockets, so a raw one.
      const slow = await nonReadingSubscriber(slowApp.url, t.tokens.service);
      // Enough to fill the kernel's socket buffers too (a few MB on loopback): 2,000 events of 8 KB.
      for (let i = 0; i < 20; i++) await append(t.tenantId, 100, "bulk", { pad: "x".repeat(8 * 1024) });
      const head = await lastSequence(t, slowApp);
      await fast.until((e) => e.length >= head, 40_000);
      // The server gives up on it after WS_SLOW_CONSUMER_SECONDS with a full buffer; a client that
      // then reads on gets the close frame behind the events it had not read.
      await waitFor(
        "the slow consumer's close (keyplane_websocket_closes_total 4008)",
        async () => (await metric(slowApp.url, 'keyplane_websocket_closes_total{code="4008"}')) === 1,
        30_000,
      );
      const received = await slow.readToClose();
      expect(received.subarray(-64).includes(closeFrame(4008, "Slow consumer"))).toBe(true);
      expect(received.length).toBeLessThan(2000 * 8 * 1024);
    } finally {
      await slowApp.close();
    }
  });
});

/** Subscribes to tenantEvents over a raw TCP socket (frames by hand), then reads nothing until told. */
async function nonReadingSubscriber(url: string, token: string) {
  const { port } = new URL(url);
  const socket = net.connect(Number(port), "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.write(
    `GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`,
  );
  let buffered = Buffer.alloc(0);
  const onData = (chunk: Buffer) => (buffered = Buffer.concat([buffered, chunk]));
  socket.on("data", onData);
  socket.write(maskedTextFrame(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })));
  await waitFor("connection_ack", () => buffered.includes("connection_ack"));
  socket.write(maskedTextFrame(JSON.stringify({ id: "1", type: "subscribe", payload: { query: TENANT_EVENTS, variables: { after: fromStart } } })));
  await waitFor("the first event", () => buffered.includes('"next"'));
  socket.off("data", onData);
  socket.pause();
  return {
    bytesRead: () => socket.bytesRead,
    /** Reads on until the server's close frame (4008) or the connection's end, whichever is first. */
    readToClose: () =>
      new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        const expected = closeFrame(4008, "Slow consumer");
        let tail = Buffer.alloc(0);
        const done = () => {
          socket.destroy();
          resolve(Buffer.concat(chunks));
        };
        socket.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          tail = Buffer.concat([tail, chunk]).subarray(-expected.length);
          if (tail.equals(expected)) done();
        });
        socket.on("error", () => {});
        socket.on("close", done);
        socket.resume();
      }),
  };
}

function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const header =
    payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([header, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
}

function closeFrame(code: number, reason: string): Buffer {
  return Buffer.concat([Buffer.from([0x88, 2 + reason.length, code >> 8, code & 0xff]), Buffer.from(reason)]);
}

async function rawSocket(token: string, url = app.url): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  await new Promise<void>((resolve) => ws.once("message", () => resolve()));
  return ws;
}

async function metric(url: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** This process's keyplane_live_subscribers: subscriptions registered with the live feed (tests of this file run one at a time). */
const liveSubscribers = async () => (await metric(app.url, "keyplane_live_subscribers")) ?? 0;

function untilLiveSubscribers(count: number) {
  return waitFor(`${count} live subscribers (keyplane_live_subscribers)`, async () => (await liveSubscribers()) >= count);
}
