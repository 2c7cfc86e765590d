import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { GraphQLError, type ExecutionArgs, type GraphQLFormattedError } from "graphql";
import { CloseCode, handleProtocols, makeServer, type SubscribePayload } from "graphql-ws";
import type { YogaServerInstance } from "graphql-yoga";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { authenticate } from "../app/authenticate.ts";
import type { AppDeps } from "../app/deps.ts";
import type { Actor, RequestMeta } from "../auth/actor.ts";
import { DomainError } from "../errors.ts";
import type { GraphQLContext } from "../graphql/context.ts";
import { logContext, type LogContext } from "../logger.ts";
import { isDatabaseUnavailable } from "../store/databaseErrors.ts";
import { requestIdOf, requestMetaOf } from "./requestMeta.ts";
import { traceContextOf } from "./traceContext.ts";
import { createClientAddressResolver, rememberClientAddress } from "./clientAddress.ts";
import type { ServerContext } from "./yoga.ts";

/**
 * GraphQL over WebSocket (graphql-ws, subprotocol `graphql-transport-ws`) on the HTTP server's own
 * port and path. Operations go through Yoga's envelop pipeline (`yoga.getEnveloped`): the same
 * schema, context, auth scopes, plugins and error masking as over HTTP.
 *
 * The token travels once, in `connection_init`'s payload (`{ authorization: "Bearer …" }`), and is
 * checked once by `authenticate`, as an HTTP request's header is. The Actor it gives serves every
 * operation of the connection (no re-verification per message). The socket then follows its token
 * (deps.tokenWatch): it is closed when the token or its session is revoked, its tenant suspended,
 * or the token expires.
 */

/** Close codes a client can meet, besides graphql-ws's own protocol errors (4400, 4406, 4409, 4429). */
export const WS_CLOSE = {
  /** `connection_init` without a token (or a subscribe before the connection was acknowledged). */
  unauthorized: CloseCode.Unauthorized, // 4401 "Unauthorized"
  /** A token that is malformed, bad, expired, revoked or of an unknown tenant, or "Tenant suspended"; or, while connected, "Token revoked" / "Token expired" / "Tenant suspended". */
  forbidden: CloseCode.Forbidden, // 4403 "Forbidden"
  /** No `connection_init` within the wait timeout. */
  initTimeout: CloseCode.ConnectionInitialisationTimeout, // 4408
  /** An unexpected server failure. */
  internal: CloseCode.InternalServerError, // 4500
  /** The database was unreachable (e.g. while authenticating): connect again in a few seconds (RFC 6455's "Try Again Later"). */
  unavailable: 1013,
  /** The server shuts down; connect again (to another process). */
  goingAway: 1001,
  /** A message over the payload limit (ws closes with it). */
  tooLarge: 1009,
  /** The client did not read: its send buffer stayed full. Subscribe again with the last cursor received. */
  slowConsumer: 4008,
  /** The principal already holds as many sockets as it may (on this process), or the address failed to authenticate too often. */
  tooManySockets: 4029,
  /** No operation ran for the idle timeout. */
  idle: 1000,
} as const;

export interface GraphQLWebSocketOptions {
  /** Path that accepts upgrades. Default `/graphql`. */
  path?: string;
  /** Protocol-level ping every this many ms; a socket that has not answered the previous ping by then is terminated. Default 30 s. */
  keepAliveMs?: number;
  /** How long a socket may stay open without `connection_init`. Default 5 s. */
  connectionInitWaitTimeoutMs?: number;
  /** Largest message a client may send. Default 64 KiB. */
  maxPayloadBytes?: number;
  /** Operations one connection may run at the same time. Default 20. */
  maxOperationsPerConnection?: number;
  /** Bytes a socket may have waiting to be sent; past it, its operations wait for the client. Default 1 MiB. */
  sendBufferBytes?: number;
  /** A client that leaves its send buffer full this long is closed as a slow consumer. Default 10 s. */
  slowConsumerMs?: number;
  /** Sockets one principal (tenant + subject) may hold open on this process. Default 20. */
  maxSocketsPerPrincipal?: number;
  /** A socket without any operation for this long is closed. Default 5 min. */
  idleTimeoutMs?: number;
  /** How often sockets are checked for idleness. Default 2 s. (Their tokens: deps.tokenWatch.) */
  idleCheckMs?: number;
  /** On close, how long sockets get to finish the close handshake before they are cut. Default 2 s. */
  closeGraceMs?: number;
}

export const WEBSOCKET_DEFAULTS: Required<GraphQLWebSocketOptions> = {
  path: "/graphql",
  keepAliveMs: 30_000,
  connectionInitWaitTimeoutMs: 5_000,
  maxPayloadBytes: 64 * 1024,
  maxOperationsPerConnection: 20,
  sendBufferBytes: 1024 * 1024,
  slowConsumerMs: 10_000,
  maxSocketsPerPrincipal: 20,
  idleTimeoutMs: 5 * 60_000,
  idleCheckMs: 2_000,
  closeGraceMs: 2_000,
};

export interface GraphQLWebSocketServer {
  /** Sockets open right now. */
  readonly size: number;
  /** Refuses new upgrades (503), closes every socket with 1001 and waits for their subscriptions to end. */
  close(): Promise<void>;
}

/** One WebSocket connection: who it is (once authenticated) and where it came from. */
interface Connection {
  readonly id: string;
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
  /** Request facts of the upgrade (request id = the connection id); the connection's auth failures are recorded with them. */
  readonly meta: RequestMeta;
  /** Log fields of every line written for the connection; each operation gets its own request id on top. */
  readonly log: LogContext;
  readonly opened: number;
  actor: Actor | null;
  alive: boolean;
  operations: number;
  /** Operations running now (subscriptions mostly). */
  running: number;
  /** When the last operation ended, or the connection opened: the idle clock. */
  idleSince: number;
  /** Stops following the token (deps.tokenWatch) once the socket is closed. */
  unwatch?: () => void;
}

interface Extra {
  connection: Connection;
}

type Yoga = YogaServerInstance<ServerContext, GraphQLContext>;
type Enveloped = ReturnType<Yoga["getEnveloped"]>;

const attached = new WeakMap<Server, GraphQLWebSocketServer>();

/** The WebSocket server attached to an HTTP server by `attachGraphQLWebSocket`, if any. */
export function graphQLWebSocketOf(server: Server): GraphQLWebSocketServer | undefined {
  return attached.get(server);
}

/** Accepts graphql-ws upgrades on `server` at `options.path` and runs their operations through `yoga`. */
export function attachGraphQLWebSocket(server: Server, yoga: Yoga, deps: AppDeps, options: GraphQLWebSocketOptions = {}): GraphQLWebSocketServer {
  const clientAddress = createClientAddressResolver(deps.config.trustedProxies);
  const settings = { ...WEBSOCKET_DEFAULTS, ...options };
  const logger = deps.logger;
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: settings.maxPayloadBytes,
    perMessageDeflate: false,
    handleProtocols: (protocols) => handleProtocols(protocols),
  });
  const connections = new Set<Connection>();
  const cleanups = new Set<Promise<void>>();
  const upgradeIds = new WeakMap<IncomingMessage, string>();
  const envelopedOf = new WeakMap<object, Enveloped>();
  let closing: Promise<void> | undefined;

  // The 101 answer carries the connection's request id, as every HTTP answer does.
  wss.on("headers", (headers, req) => {
    const id = upgradeIds.get(req);
    if (id) headers.push(`X-Request-Id: ${id}`);
  });

  const graphqlWs = makeServer<Record<string, unknown> | undefined, Extra>({
    connectionInitWaitTimeout: settings.connectionInitWaitTimeoutMs,

    async onConnect(ctx) {
      const connection = ctx.extra.connection;
      const authorization = authorizationOf(ctx.connectionParams);
      if (authorization === null) {
        await deps.security.authFailed({
          tenantId: null,
          actor: null,
          reason: "missing",
          action: "authenticate",
          resource: "graphql-ws",
          request: connection.meta,
        });
        closeSocket(connection, WS_CLOSE.unauthorized, "Unauthorized");
        return false;
      }
      let actor: Actor | null;
      try {
        actor = await authenticate(deps, authorization, connection.meta);
      } catch (error) {
        // authenticate recorded the refusal (auth.failed with its reason) already, and it counted
        // against the address: past the address's limit the refusal is 4029, as HTTP answers 429.
        // A valid token never gets here, so it is never refused for others' failures.
        if (error instanceof DomainError && error.code === "TENANT_SUSPENDED") {
          closeSocket(connection, WS_CLOSE.forbidden, "Tenant suspended");
          return false;
        }
        if (error instanceof DomainError && error.code === "UNAUTHENTICATED") {
          if (await deps.limits.refusedCredential(connection.meta)) closeSocket(connection, WS_CLOSE.tooManySockets, "Too many failed authentications");
          else closeSocket(connection, WS_CLOSE.forbidden, "Forbidden");
          return false;
        }
        throw error;
      }
      if (!actor) {
        closeSocket(connection, WS_CLOSE.unauthorized, "Unauthorized");
        return false;
      }
      const principal = principalOf(actor);
      const held = [...connections].filter((c) => c.actor && principalOf(c.actor) === principal).length;
      if (held >= settings.maxSocketsPerPrincipal) {
        await deps.security.accessDenied({
          tenantId: actor.tenantId,
          actor,
          reason: "rate-limited",
          action: "connect",
          resource: "graphql-ws",
          details: { limit: settings.maxSocketsPerPrincipal },
          request: connection.meta,
        });
        closeSocket(connection, WS_CLOSE.tooManySockets, "Too many connections");
        return false;
      }
      connection.actor = actor;
      Object.assign(connection.log, { tenantId: actor.tenantId, actor: actor.subject });
      const current = logContext.getStore();
      if (current) Object.assign(current, { tenantId: actor.tenantId, actor: actor.subject });
      // The socket follows its token: a revocation (of the token or its session), a suspended tenant
      // or the token's expiry closes it.
      connection.unwatch = deps.tokenWatch.watch(actor, (reason) => closeSocket(connection, WS_CLOSE.forbidden, reason));
      logger.debug({ connectionId: connection.id }, "websocket connection authenticated");
      return true;
    },

    async onSubscribe(ctx, id, payload) {
      const connection = ctx.extra.connection;
      const actor = connection.actor;
      // graphql-ws closes with 4401 before this for an unacknowledged connection; this is a second wall.
      if (!actor) return [new GraphQLError("authentication required", { extensions: { code: "UNAUTHENTICATED" } })];
      if (connection.running >= settings.maxOperationsPerConnection) {
        return [
          new GraphQLError(`at most ${settings.maxOperationsPerConnection} operations at a time on one connection`, { extensions: { code: "RATE_LIMITED" } }),
        ];
      }
      // Counted from here (operations arrive concurrently); graphql-ws reports the end through onComplete.
      connection.running += 1;
      let started = false;
      try {
        const prepared = await prepareOperation(connection, actor, id, payload);
        started = !Array.isArray(prepared);
        return prepared;
      } finally {
        if (!started) operationEnded(connection);
      }
    },
    // Yoga's execute and subscribe carry its plugins and error masking.
    execute: (args) => envelopedOf.get(args.contextValue as object)!.execute(args),
    subscribe: (args) => envelopedOf.get(args.contextValue as object)!.subscribe(args),

    onComplete: (ctx) => operationEnded(ctx.extra.connection),
    // `extensions.http` is for the HTTP transport only (Yoga strips it from HTTP answers too).
    onNext: (_ctx, _id, _payload, _args, result) => (result.errors?.length ? { ...result, errors: result.errors.map(formatError) } : undefined),
    onError: (_ctx, _id, _payload, errors) => errors.map(formatError),
  });

  async function prepareOperation(
    connection: Connection,
    actor: Actor,
    id: string,
    payload: SubscribePayload,
  ): Promise<ExecutionArgs | readonly GraphQLError[]> {
    // Each operation is a request of its own: its own request id in logs and in the events it appends.
    const requestId = randomUUID();
    const log = logContext.getStore();
    if (log) log.requestId = requestId;
    connection.operations += 1;
    logger.debug({ connectionId: connection.id, operationId: id, operationName: payload.operationName ?? undefined }, "websocket operation");

    const enveloped = yoga.getEnveloped({ req: connection.request, request: operationRequest(connection.request, payload), params: payload });
    let document: ReturnType<Enveloped["parse"]>;
    try {
      document = enveloped.parse(payload.query);
    } catch (error) {
      if (!(error instanceof GraphQLError)) throw error;
      // A refusal of Keyplane's own parse limits (MAX_TOKENS_EXCEEDED, TOO_DEEP) keeps its reason and
      // field, as over HTTP; Yoga's HTTP status is for HTTP only.
      const { http: _http, ...extensions } = error.extensions ?? {};
      const reason = typeof extensions.reason === "string" ? extensions.reason : "GRAPHQL_PARSE_FAILED";
      return [
        new GraphQLError(error.message, {
          nodes: error.nodes,
          source: error.source,
          positions: error.positions,
          extensions: { ...extensions, code: "BAD_USER_INPUT", reason },
        }),
      ];
    }
    // Yoga's plugins (validationErrorsAreBadInput among them) see the validation as over HTTP.
    const errors = enveloped.validate(enveloped.schema, document);
    if (errors.length) return errors;
    // Yoga's context factory runs as for an anonymous HTTP request (the operation request carries no
    // Authorization), then the connection's Actor takes its place: one verification per connection.
    const contextValue = (await enveloped.contextFactory()) as GraphQLContext;
    contextValue.actor = actor;
    contextValue.transport = "ws";
    envelopedOf.set(contextValue, enveloped);
    const args: ExecutionArgs = {
      schema: enveloped.schema,
      document,
      contextValue,
      variableValues: payload.variables,
      operationName: payload.operationName,
    };
    return args;
  }

  /** The guard of the upgrade, as server.ts guards every request: a failure refuses this upgrade, never the process. */
  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    socket.on("error", () => socket.destroy());
    try {
      upgrade(req, socket, head);
    } catch (error) {
      logger.error({ err: error }, "websocket upgrade failed");
      if (socket.writable) refuseUpgrade(socket, 500, "Internal Server Error");
      else socket.destroy();
    }
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    rememberClientAddress(req, clientAddress(req));
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== settings.path) return refuseUpgrade(socket, 404, "Not Found");
    if (closing) return refuseUpgrade(socket, 503, "Service Unavailable");
    const id = requestIdOf(headerOf(req, "x-request-id"));
    upgradeIds.set(req, id);
    wss.handleUpgrade(req, socket, head, (ws) => opened(ws, req, id));
  }

  function opened(socket: WebSocket, request: IncomingMessage, id: string) {
    // The upgrade request's trace context (traceparent) tags the connection's log lines.
    const trace = traceContextOf(headerOf(request, "traceparent"));
    const log: LogContext = {
      requestId: id,
      traceId: trace.traceId,
      spanId: trace.spanId,
      ...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
    };
    const meta = logContext.run(log, () => requestMetaOf(null, request));
    const connection: Connection = {
      id,
      socket,
      request,
      meta,
      log,
      opened: Date.now(),
      actor: null,
      alive: true,
      operations: 0,
      running: 0,
      idleSince: Date.now(),
    };
    connections.add(connection);
    deps.metrics.websocketsOpen.inc();
    socket.on("pong", () => (connection.alive = true));
    // ws closes the socket itself after a protocol error (1002) or an oversized message (1009).
    socket.on("error", (error) => logContext.run({ ...connection.log }, () => logger.debug({ err: error.message, connectionId: id }, "websocket error")));

    const closed = graphqlWs.opened(
      {
        protocol: socket.protocol,
        // Backpressure: past sendBufferBytes not yet flushed to the kernel, the operation waits for the
        // client (its events wait in the feed, bounded there too); a client that does not read on
        // within slowConsumerMs is closed, so it holds up neither the writers nor other subscribers.
        send: (data) => {
          if (socket.readyState !== socket.OPEN) return;
          deps.metrics.websocketFrames.inc();
          if (batchWrites(socket)) deps.metrics.websocketWrites.inc();
          if (socket.bufferedAmount + data.length <= settings.sendBufferBytes) return socket.send(data);
          return new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              closeSlowConsumer(connection);
              resolve();
            }, settings.slowConsumerMs);
            socket.send(data, () => {
              clearTimeout(timer);
              resolve();
            });
          });
        },
        close: (code, reason) => closeSocket(connection, code ?? 1000, reason ?? ""),
        onMessage: (handle) =>
          socket.on("message", (data: RawData) => {
            // A store per message: an operation sets its own request id without touching the others.
            logContext.run({ ...connection.log }, () => {
              handle(text(data)).catch((error: unknown) => {
                if (socket.readyState !== socket.OPEN) return;
                if (isDatabaseUnavailable(error)) {
                  logger.warn({ err: error, connectionId: id }, "websocket message failed: database unavailable");
                  return closeSocket(connection, WS_CLOSE.unavailable, "Database unavailable, try again later");
                }
                logger.error({ err: error, connectionId: id }, "websocket message failed");
                closeSocket(connection, WS_CLOSE.internal, "Internal server error");
              });
            });
          }),
      },
      { connection },
    );

    socket.once("close", (code: number, reason: Buffer) => {
      connection.unwatch?.();
      connections.delete(connection);
      deps.metrics.websocketsOpen.dec();
      const cleanup = closed(code, reason.toString())
        .catch((error: unknown) => logContext.run({ ...connection.log }, () => logger.error({ err: error }, "websocket cleanup failed")))
        .finally(() => cleanups.delete(cleanup));
      cleanups.add(cleanup);
      logContext.run({ ...connection.log }, () =>
        logger.info(
          {
            method: "GET",
            path: settings.path,
            status: 101,
            websocket: { code, operations: connection.operations },
            durationMs: Date.now() - connection.opened,
          },
          "websocket closed",
        ),
      );
    });
  }

  function closeSocket(connection: Connection, code: number, reason: string) {
    if (connection.socket.readyState !== connection.socket.OPEN) return;
    deps.metrics.websocketCloses.inc({ code: String(code) });
    connection.socket.close(code, reason);
  }

  // The close frame queues behind what the client has not read: a client that reads on gets it. One
  // that does not is cut by ws itself 30 s after the close (its closing handshake's limit); an earlier
  // cut of our own lost the close frame of clients that resumed reading on a busy machine.
  function closeSlowConsumer(connection: Connection) {
    if (connection.socket.readyState !== connection.socket.OPEN) return;
    logContext.run({ ...connection.log }, () =>
      logger.info({ connectionId: connection.id, buffered: connection.socket.bufferedAmount }, "websocket closed: slow consumer"),
    );
    closeSocket(connection, WS_CLOSE.slowConsumer, "Slow consumer");
  }

  function operationEnded(connection: Connection) {
    connection.running = Math.max(0, connection.running - 1);
    if (connection.running === 0) connection.idleSince = Date.now();
  }

  // A socket without any operation for idleTimeoutMs is closed.
  const idleChecks = setInterval(() => {
    const now = Date.now();
    for (const connection of connections) {
      if (connection.actor && connection.running === 0 && now - connection.idleSince > settings.idleTimeoutMs) closeSocket(connection, WS_CLOSE.idle, "Idle");
    }
  }, settings.idleCheckMs);
  idleChecks.unref();

  // Protocol pings: a socket that did not answer the last one is gone (a dead peer, a silent NAT).
  const heartbeat = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        logContext.run({ ...connection.log }, () => logger.debug({ connectionId: connection.id }, "websocket did not answer a ping; terminated"));
        connection.socket.terminate();
        continue;
      }
      connection.alive = false;
      if (connection.socket.readyState === connection.socket.OPEN) connection.socket.ping();
    }
  }, settings.keepAliveMs);
  heartbeat.unref();

  server.on("upgrade", onUpgrade);

  const handle: GraphQLWebSocketServer = {
    get size() {
      return connections.size;
    },
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        clearInterval(idleChecks);
        const open = [...connections];
        const gone = Promise.all(
          open.map((c) => new Promise<void>((resolve) => (c.socket.readyState === c.socket.CLOSED ? resolve() : c.socket.once("close", () => resolve())))),
        );
        for (const connection of open) closeSocket(connection, WS_CLOSE.goingAway, "Going away");
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([gone, new Promise<void>((resolve) => (grace = setTimeout(resolve, settings.closeGraceMs)))]);
        clearTimeout(grace);
        for (const connection of connections) connection.socket.terminate();
        await gone;
        // Subscriptions end (their iterators are returned) once their socket has closed.
        await Promise.all([...cleanups]);
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return closing;
    },
  };
  attached.set(server, handle);
  return handle;
}

const principalOf = (actor: Actor) => `${actor.tenantId}\u0000${actor.subject}`;

/** The token of `connection_init`: `{ authorization: "Bearer …" }` (or `Authorization`). Null when there is none. */
function authorizationOf(params: Record<string, unknown> | undefined): string | null {
  const value = params?.authorization ?? params?.Authorization;
  if (value === undefined || value === null || value === "") return null;
  // Something that is not a string is a malformed token: authenticate refuses and records it.
  return typeof value === "string" ? value : "(not a string)";
}

/**
 * The Fetch Request Yoga's context factory and plugins see for one operation. It carries the facts of
 * the upgrade that describe the client (user agent, correlation id), never its Authorization (the
 * connection's Actor stands in). Per-request headers travel in the operation's own `extensions`,
 * since one upgrade serves many operations: `{ "idempotencyKey": "…" }` is the `Idempotency-Key` of
 * that mutation.
 */
function operationRequest(req: IncomingMessage, payload: SubscribePayload): Request {
  const headers = new Headers();
  for (const name of ["user-agent", "x-correlation-id"]) {
    const value = headerOf(req, name);
    if (value) headers.set(name, value);
  }
  const key = payload.extensions?.idempotencyKey;
  // A value a header cannot hold is refused by the plugin like a bad header (BAD_USER_INPUT).
  if (key !== undefined) headers.set("idempotency-key", typeof key === "string" && /^[\x20-\x7e]*$/.test(key) ? key : "");
  return new Request("http://keyplane.invalid/graphql", { method: "POST", headers });
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : undefined;
}

function refuseUpgrade(socket: Duplex, status: number, text: string) {
  socket.once("finish", () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

function formatError(error: GraphQLError | GraphQLFormattedError): GraphQLFormattedError {
  // A subscription's stream that fails with one of our errors (SLOW_CONSUMER) keeps its code.
  if (error instanceof GraphQLError && error.originalError instanceof DomainError && !error.extensions?.code) {
    return { message: error.message, extensions: { code: error.originalError.code, ...error.originalError.extensions } };
  }
  const json: GraphQLFormattedError =
    error instanceof GraphQLError || typeof (error as { toJSON?: unknown }).toJSON === "function" ? (error as GraphQLError).toJSON() : error;
  if (!json.extensions || !("http" in json.extensions)) return json;
  const { http: _http, ...extensions } = json.extensions;
  return { ...json, extensions };
}

// Frames sent to one socket while one turn of the event loop runs (a tenant's events handed over
// together, say) leave in one write: the socket is corked at the first and uncorked once the turn's
// work is done. ws keeps its net socket as _socket.
const corked = new WeakSet<WebSocket>();
/** True for the first frame of the turn (it opens a write of its own). */
function batchWrites(socket: WebSocket): boolean {
  if (corked.has(socket)) return false;
  const raw = (socket as unknown as { _socket?: Duplex })._socket;
  if (!raw) return true;
  corked.add(socket);
  raw.cork();
  setImmediate(() => {
    corked.delete(socket);
    raw.uncork();
  });
  return true;
}
