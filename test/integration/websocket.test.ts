import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql, type Selectable } from "kysely";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGraphQLServer } from "../../src/http/yoga.ts";
import { attachGraphQLWebSocket, WS_CLOSE, type GraphQLWebSocketServer } from "../../src/http/websocket.ts";
import { withPlatform } from "../../src/store/db.ts";
import type { EventsTable } from "../../src/store/schema.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { waitFor } from "../testkit/waitFor.ts";

// GraphQL over WebSocket (graphql-ws) beside SSE: one token per connection, checked once at
// connection_init with the HTTP path's own authenticate; operations through Yoga's pipeline.

const TICKS = "subscription ($count: Int!, $intervalMs: Int!) { ticks(count: $count, intervalMs: $intervalMs) }";

interface Outcome {
  /** Every `next` payload, in order. */
  results: Array<{ data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> }>;
  /** The operation's `error` message (GraphQL errors), when it ended with one. */
  errors?: Array<{ message: string; extensions?: Record<string, any> }>;
  /** How the socket closed, when it ended the operation. */
  close?: { code: number; reason: string };
  completed: boolean;
  acknowledged: boolean;
}

let app: TestApp;
let tenant: SeededTenant;

const wsUrl = (base: string) => `${base.replace(/^http/, "ws")}/graphql`;

/** A WebSocket class for graphql-ws that sends extra upgrade headers. */
function socketWithHeaders(headers: Record<string, string>) {
  return class extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  };
}

function client(
  options: { url?: string; token?: string | null; connectionParams?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Client & { acknowledged(): boolean } {
  let acknowledged = false;
  const c = createClient({
    url: options.url ?? wsUrl(app.url),
    webSocketImpl: options.headers ? socketWithHeaders(options.headers) : WebSocket,
    connectionParams: options.connectionParams ?? (options.token ? { authorization: `Bearer ${options.token}` } : {}),
    retryAttempts: 0,
    lazy: true,
    on: { connected: () => (acknowledged = true) },
  });
  return Object.assign(c, { acknowledged: () => acknowledged });
}

/** Runs one operation on a client until it completes, errors or the socket closes. */
function run(c: Client & { acknowledged(): boolean }, query: string, variables: Record<string, unknown> = {}, onNext?: (n: number) => void): Promise<Outcome> {
  const outcome: Outcome = { results: [], completed: false, acknowledged: false };
  return new Promise<Outcome>((resolve) => {
    c.subscribe(
      { query, variables },
      {
        next: (result) => {
          outcome.results.push(result as Outcome["results"][number]);
          onNext?.(outcome.results.length);
        },
        error: (error: unknown) => {
          if (Array.isArray(error)) outcome.errors = error;
          else if (error && typeof error === "object" && "code" in error)
            outcome.close = { code: (error as { code: number }).code, reason: String((error as { reason?: unknown }).reason ?? "") };
          else outcome.errors = [{ message: String(error) }];
          outcome.acknowledged = c.acknowledged();
          resolve(outcome);
        },
        complete: () => {
          outcome.completed = true;
          outcome.acknowledged = c.acknowledged();
          resolve(outcome);
        },
      },
    );
  });
}

async function once(options: Parameters<typeof client>[0], query: string, variables?: Record<string, unknown>): Promise<Outcome> {
  const c = client(options);
  try {
    return await run(c, query, variables);
  } finally {
    await c.dispose();
  }
}

/** A raw socket speaking graphql-transport-ws (or not), for what a well-behaved client never does. */
function rawSocket(url: string, options: { protocol?: string | null; autoPong?: boolean } = {}) {
  const socket = new WebSocket(url, options.protocol === null ? [] : [options.protocol ?? "graphql-transport-ws"], { autoPong: options.autoPong ?? true });
  const closed = new Promise<{ code: number; reason: string; after: number }>((resolve) => {
    const started = Date.now();
    socket.on("close", (code, reason) => resolve({ code, reason: reason.toString(), after: Date.now() - started }));
  });
  socket.on("error", () => {});
  const open = new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("unexpected-response", (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    socket.once("error", reject);
  });
  const messages: any[] = [];
  socket.on("message", (data) => messages.push(JSON.parse(data.toString())));
  return { socket, open, closed, messages };
}

async function eventsOfRequest(requestId: string): Promise<Array<Selectable<EventsTable>>> {
  return withPlatform(app.database.db, (trx) =>
    trx.selectFrom("events").selectAll().where(sql<string>`metadata->>'requestId'`, "=", requestId).orderBy("tenant_id").orderBy("tenant_seq").execute(),
  );
}
const json = (value: unknown): Record<string, any> => (typeof value === "string" ? JSON.parse(value) : (value as Record<string, any>));

/** A viewer token of the seeded tenant signed with Keyplane's key, expiring in `seconds` (negative: already expired). */
async function tokenExpiringIn(seconds: number): Promise<string> {
  const { token } = await app.kp.deps.minter.mintAccessToken({
    tenantId: tenant.tenantId,
    subject: `short-lived-${randomUUID()}`,
    kind: "user",
    roles: ["viewer"],
    scopes: [],
    issuedAt: new Date(),
    expiresAt: new Date(Date.now() + seconds * 1000),
  });
  registerSecret(token);
  return token;
}

async function tokenIdOf(token: string): Promise<string> {
  const res = await app.gql("{ me { tokenId } }", {}, { token });
  expect(res.errors).toBeUndefined();
  return res.data.me.tokenId;
}

beforeAll(async () => {
  app = await createTestApp({ name: "websocket" });
  tenant = await app.seedTenant();
});
afterAll(async () => {
  await app?.close();
});

describe("subscriptions over WebSocket (graphql-ws)", () => {
  it("streams a subscription's results to a client with a valid token, then completes", async () => {
    const outcome = await once({ token: tenant.tokens.viewer }, TICKS, { count: 3, intervalMs: 10 });
    expect(outcome.close).toBeUndefined();
    expect(outcome.errors).toBeUndefined();
    expect(outcome.results).toEqual([{ data: { ticks: 1 } }, { data: { ticks: 2 } }, { data: { ticks: 3 } }]);
    expect(outcome.completed).toBe(true);
  });

  it("runs queries on the connection's actor, and several operations share one connection", async () => {
    const c = client({ token: tenant.tokens.editor });
    try {
      const [me, ticks, again] = await Promise.all([
        run(c, "{ me { subject tenantId roles } }"),
        run(c, TICKS, { count: 2, intervalMs: 10 }),
        run(c, "query Named { me { subject } }"),
      ]);
      expect(me.results).toEqual([{ data: { me: { subject: `editor@${tenant.tenantId}`, tenantId: tenant.tenantId, roles: ["editor"] } } }]);
      expect(ticks.results.map((r) => r.data?.ticks)).toEqual([1, 2]);
      expect(again.results).toEqual([{ data: { me: { subject: `editor@${tenant.tenantId}` } } }]);
    } finally {
      await c.dispose();
    }
  });

  it("honours an operation's Idempotency-Key, sent in its extensions: a retried mutation gets the first result, appends nothing", async () => {
    const c = client({ token: tenant.tokens.admin });
    const mutate = (description: string, idempotencyKey: unknown) =>
      new Promise<{ data?: any; errors?: Array<{ extensions?: Record<string, unknown> }> }>((resolve, reject) => {
        let result: { data?: any; errors?: any } = {};
        c.subscribe(
          {
            query: "mutation ($d: String) { createEnrollmentKey(input: { description: $d }) { id prefix } }",
            variables: { d: description },
            extensions: { idempotencyKey },
          },
          { next: (r) => (result = r), error: (e) => (Array.isArray(e) ? resolve({ errors: e }) : reject(e)), complete: () => resolve(result) },
        );
      });
    try {
      const key = `ws-retry-${randomUUID()}`;
      const first = await mutate("over ws", key);
      expect(first.errors).toBeUndefined();
      const retried = await mutate("over ws", key);
      expect(retried.data).toEqual(first.data);
      const other = await mutate("something else", key);
      expect(other.errors?.[0]?.extensions?.code).toBe("CONFLICT");
      const bad = await mutate("over ws", "short");
      expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
      const keys = await app.gql("{ enrollmentKeys { id description } }", {}, { token: tenant.tokens.admin });
      expect(keys.data.enrollmentKeys.filter((k: { description: string }) => k.description === "over ws")).toHaveLength(1);
    } finally {
      await c.dispose();
    }
  });

  it("answers 101 with the connection's request id", async () => {
    const requestId = `ws-${randomUUID()}`;
    const raw = new WebSocket(wsUrl(app.url), ["graphql-transport-ws"], { headers: { "x-request-id": requestId } });
    const header = await new Promise<string | undefined>((resolve, reject) => {
      raw.once("upgrade", (res) => resolve(res.headers["x-request-id"] as string | undefined));
      raw.once("error", reject);
    });
    raw.close();
    expect(header).toBe(requestId);
  });

  it("closes with 4401 before any result when connection_init carries no token, and records auth.failed (missing)", async () => {
    const requestId = `ws-${randomUUID()}`;
    const outcome = await once({ headers: { "x-request-id": requestId } }, TICKS, { count: 1, intervalMs: 10 });
    expect(outcome.close).toEqual({ code: 4401, reason: "Unauthorized" });
    expect(outcome.results).toEqual([]);
    expect(outcome.acknowledged).toBe(false);
    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => [e.event_type, json(e.data).reason])).toEqual([["auth.failed", "missing"]]);

    for (const connectionParams of [{ authorization: "" }, { authorization: null }, { somethingElse: "Bearer x" }]) {
      const other = await once({ connectionParams }, TICKS, { count: 1, intervalMs: 10 });
      expect(other.close?.code, JSON.stringify(connectionParams)).toBe(4401);
      expect(other.results).toEqual([]);
    }
  });

  it("closes with 4403 for a malformed or badly signed token", async () => {
    const [header, payload, signature] = tenant.tokens.viewer.split(".") as [string, string, string];
    const tampered = `${header}.${payload}.${signature.slice(0, -4)}${signature.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
    for (const authorization of ["Bearer nonsense", `Bearer ${tampered}`, `Basic ${tenant.tokens.viewer}`, 42]) {
      const outcome = await once({ connectionParams: { authorization } }, TICKS, { count: 1, intervalMs: 10 });
      expect(outcome.close, String(authorization).slice(0, 20)).toEqual({ code: 4403, reason: "Forbidden" });
      expect(outcome.results).toEqual([]);
      expect(outcome.acknowledged).toBe(false);
    }
  });

  it("closes with 4403 for a revoked token (revokeAccessToken before connecting), and records auth.failed (revoked)", async () => {
    const token = await app.mintToken({ tenantId: tenant.tenantId, roles: ["viewer"], subject: `revoked-${randomUUID()}` });
    const tokenId = await tokenIdOf(token);
    const revoked = await app.gql(
      "mutation ($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId revokedAt } }",
      { id: tokenId },
      { token: tenant.tokens.admin },
    );
    expect(revoked.errors).toBeUndefined();

    const requestId = `ws-${randomUUID()}`;
    const outcome = await once({ token, headers: { "x-request-id": requestId } }, TICKS, { count: 1, intervalMs: 10 });
    expect(outcome.close).toEqual({ code: 4403, reason: "Forbidden" });
    expect(outcome.results).toEqual([]);
    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => [e.event_type, e.tenant_id, json(e.data).reason])).toEqual([["auth.failed", tenant.tenantId, "revoked"]]);
  });

  it("closes with 4403 for an expired token", async () => {
    const token = await tokenExpiringIn(-60);
    const outcome = await once({ token }, TICKS, { count: 1, intervalMs: 10 });
    expect(outcome.close).toEqual({ code: 4403, reason: "Forbidden" });
    expect(outcome.results).toEqual([]);
  });

  it("closes the connection with 4403 when its token expires while connected", async () => {
    const token = await tokenExpiringIn(2);
    const started = Date.now();
    const outcome = await once({ token }, TICKS, { count: 100, intervalMs: 1000 });
    expect(outcome.results.length).toBeGreaterThanOrEqual(1);
    expect(outcome.close).toEqual({ code: 4403, reason: "Token expired" });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("answers a document that does not validate with BAD_USER_INPUT errors (and the socket stays usable)", async () => {
    const c = client({ token: tenant.tokens.viewer });
    try {
      const missingArgument = await run(c, "subscription { ticks(count: 1) }");
      expect(missingArgument.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
      expect(missingArgument.errors?.[0]?.extensions?.reason).toBe("GRAPHQL_VALIDATION_FAILED");
      expect(missingArgument.errors?.[0]?.extensions?.http).toBeUndefined();

      const unknownField = await run(c, "subscription { nope }");
      expect(unknownField.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);

      const unparsable = await run(c, "subscription { ticks(");
      expect(unparsable.errors?.map((e) => e.extensions)).toEqual([{ code: "BAD_USER_INPUT", reason: "GRAPHQL_PARSE_FAILED" }]);

      const wrongVariable = await run(c, TICKS, { count: "three", intervalMs: 10 });
      expect([...(wrongVariable.errors ?? []), ...wrongVariable.results.flatMap((r) => r.errors ?? [])].map((e) => e.extensions?.code)).toEqual([
        "BAD_USER_INPUT",
      ]);

      // Out of range: the resolver's own refusal, as over HTTP.
      const outOfRange = await run(c, TICKS, { count: 1000, intervalMs: 10 });
      expect([...(outOfRange.errors ?? []), ...outOfRange.results.flatMap((r) => r.errors ?? [])].map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);

      const fine = await run(c, TICKS, { count: 1, intervalMs: 10 });
      expect(fine.results).toEqual([{ data: { ticks: 1 } }]);
    } finally {
      await c.dispose();
    }
  });

  it("refuses a document over the token limit with the same reason as over HTTP (MAX_TOKENS_EXCEEDED)", async () => {
    const huge = `{ ${Array.from({ length: 3000 }, () => "__typename").join(" ")} }`;
    const outcome = await once({ token: tenant.tokens.viewer }, huge);
    expect(outcome.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "MAX_TOKENS_EXCEEDED" });
  });

  it("masks unexpected errors and keeps extensions.http out of WebSocket answers", async () => {
    // auditLog needs audit:read: the viewer's refusal is FORBIDDEN, without the HTTP status beside it.
    const outcome = await once({ token: tenant.tokens.viewer }, "{ auditLog(first: 1) { edges { cursor } } }");
    const errors = [...(outcome.errors ?? []), ...outcome.results.flatMap((r) => r.errors ?? [])];
    expect(errors.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);
    expect(errors[0]?.extensions?.http).toBeUndefined();
  });

  it("closes with 4401 a socket that subscribes before connection_init (graphql-ws rule)", async () => {
    const raw = rawSocket(wsUrl(app.url));
    await raw.open;
    raw.socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "subscription { ticks(count: 1, intervalMs: 10) }" } }));
    expect((await raw.closed).code).toBe(4401);
    expect(raw.messages).toEqual([]);
  });

  it("closes a socket that never sends connection_init (4408, after 5 s)", async () => {
    const raw = rawSocket(wsUrl(app.url));
    await raw.open;
    const closed = await raw.closed;
    expect(closed.code).toBe(WS_CLOSE.initTimeout);
    expect(closed.after).toBeGreaterThanOrEqual(4500);
    expect(closed.after).toBeLessThan(8000);
  });

  it("closes with 4406 a socket without the graphql-transport-ws subprotocol, and refuses upgrades on other paths", async () => {
    const noProtocol = rawSocket(wsUrl(app.url), { protocol: null });
    await noProtocol.open;
    expect((await noProtocol.closed).code).toBe(4406);

    const elsewhere = rawSocket(`${app.url.replace(/^http/, "ws")}/elsewhere`);
    await expect(elsewhere.open).rejects.toThrow(/unexpected response 404/);
  });

  it("closes with 1009 a socket whose message is over 64 KiB", async () => {
    const raw = rawSocket(wsUrl(app.url));
    await raw.open;
    raw.socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${tenant.tokens.viewer}`, padding: "x".repeat(65 * 1024) } }));
    expect((await raw.closed).code).toBe(WS_CLOSE.tooLarge);
  });
});

describe("the same subscription over SSE (Yoga's HTTP transport)", () => {
  async function sse(token: string | undefined, query: string, variables: Record<string, unknown>) {
    const res = await fetch(`${app.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    const data = text
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).trim())
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line));
    return { status: res.status, contentType: res.headers.get("content-type"), text, data };
  }

  it("streams the results with a valid token", async () => {
    const res = await sse(tenant.tokens.viewer, TICKS, { count: 3, intervalMs: 10 });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^text\/event-stream/);
    expect(res.data).toEqual([{ data: { ticks: 1 } }, { data: { ticks: 2 } }, { data: { ticks: 3 } }]);
    expect(res.text).toMatch(/event: complete/);
  });

  it("refuses an anonymous subscriber with UNAUTHENTICATED", async () => {
    const res = await sse(undefined, TICKS, { count: 1, intervalMs: 10 });
    const errors = res.data.flatMap((d: { errors?: Array<{ extensions?: Record<string, unknown> }> }) => d.errors ?? []);
    expect(errors.map((e: { extensions?: Record<string, unknown> }) => e.extensions?.code)).toEqual(["UNAUTHENTICATED"]);
    expect(res.data.some((d: { data?: unknown }) => d.data && (d.data as Record<string, unknown>).ticks)).toBe(false);
  });
});

describe("shutdown", () => {
  it("kp.close() closes open sockets (1001) and ends their subscriptions", async () => {
    const other = await createTestApp({ name: "websocket-close" });
    const seeded = await other.seedTenant();
    const c = client({ url: wsUrl(other.url), token: seeded.tokens.viewer });
    let firstResult!: () => void;
    const first = new Promise<void>((resolve) => (firstResult = resolve));
    const outcome = run(c, TICKS, { count: 100, intervalMs: 1000 }, (n) => n === 1 && firstResult());
    await first;
    expect(other.kp.server.listening).toBe(true);
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(5000);
    const ended = await outcome;
    expect(ended.close?.code).toBe(WS_CLOSE.goingAway);
    expect(ended.results.length).toBeLessThan(5);
    await c.dispose();
  });
});

describe("keep-alive (a server of its own with short timers)", () => {
  let server: Server;
  let websocket: GraphQLWebSocketServer;
  let url: string;
  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(404).end());
    websocket = attachGraphQLWebSocket(server, createGraphQLServer(app.kp.deps), app.kp.deps, { keepAliveMs: 100, connectionInitWaitTimeoutMs: 60_000 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  });
  afterAll(async () => {
    await websocket?.close();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it("terminates a socket that does not answer pings, and keeps one that does", async () => {
    const silent = rawSocket(url, { autoPong: false });
    const answering = rawSocket(url);
    await Promise.all([silent.open, answering.open]);
    const closed = await silent.closed;
    expect(closed.code).toBe(1006);
    expect(closed.after).toBeLessThan(1000);
    // The answering one is kept: it goes on getting pings, and each goes only to a socket that
    // answered the one before (the server terminates the others instead).
    let pings = 0;
    answering.socket.on("ping", () => pings++);
    await waitFor("three more pings to the answering socket", () => pings >= 3);
    expect(answering.socket.readyState).toBe(WebSocket.OPEN);
    expect(websocket.size).toBe(1);
    answering.socket.close();
    await answering.closed;
  });

  it("close() closes the open sockets with 1001 and refuses new upgrades", async () => {
    const raw = rawSocket(url);
    await raw.open;
    await websocket.close();
    expect((await raw.closed).code).toBe(1001);
    const late = rawSocket(url);
    await expect(late.open).rejects.toThrow(/unexpected response 503/);
    expect(websocket.size).toBe(0);
  });
});
