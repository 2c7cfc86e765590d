import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AppDeps } from "../app/deps.ts";
import type { DatabaseHandle } from "../store/db.ts";
import { meterRoundTrips, type RoundTripMeter } from "../store/roundTrips.ts";
import { logContext, type LogContext } from "../logger.ts";
import { sendError, sendJson } from "./httpErrors.ts";
import { createReadinessCheck } from "./readiness.ts";
import { requestIdOf } from "./requestMeta.ts";
import { methodOf, routeOf } from "./httpMetrics.ts";
import { traceContextOf } from "./traceContext.ts";
import { createClientAddressResolver, rememberClientAddress } from "./clientAddress.ts";
import { auditExportRoute } from "./auditExportRoute.ts";
import { consoleRoute } from "./consoleRoute.ts";
import { installationRoutes } from "./installationRoutes.ts";
import { addressPolicyOf, admitAddress } from "./addressLimits.ts";
import { createGraphQLServer } from "./yoga.ts";
import { attachGraphQLWebSocket } from "./websocket.ts";

/** One HTTP server: /graphql (Yoga), the console at /console, health probes and the JWKS beside it. */
export function createHttpServer(deps: AppDeps, database: DatabaseHandle): Server {
  const yoga = createGraphQLServer(deps);
  const installations = installationRoutes(deps);
  const auditExport = auditExportRoute(deps, database);
  const consolePages = consoleRoute();

  const readiness = createReadinessCheck(database, deps.logger);

  const clientAddress = createClientAddressResolver(deps.config.trustedProxies);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => guarded(res, () => handle(req, res)));

  function handle(req: IncomingMessage, res: ServerResponse): void {
    rememberClientAddress(req, clientAddress(req));
    // Every log line of the request carries its request id and its W3C trace context (traceparent).
    const trace = traceContextOf(req.headers.traceparent);
    const context: LogContext = {
      requestId: requestIdOf(req.headers["x-request-id"] as string | undefined),
      traceId: trace.traceId,
      spanId: trace.spanId,
      ...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
    };
    res.setHeader("x-request-id", context.requestId);
    const started = process.hrtime.bigint();
    // The query stays out of the request log: OAuth callbacks carry codes and states in it.
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const search = q === -1 ? "" : url.slice(q + 1);
    // Every database round trip made on the request's behalf, counted (a budget the tests hold).
    const roundTrips: RoundTripMeter = { count: 0 };
    res.once("finish", () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const method = methodOf(req.method);
      const route = routeOf(path);
      deps.metrics.httpRequests.inc({ method, route, status: String(res.statusCode) });
      deps.metrics.httpDuration.observe({ method, route }, durationMs / 1000);
      deps.metrics.httpDbRoundTrips.observe({ method, route }, roundTrips.count);
      if (path === "/healthz" || path === "/readyz" || path === "/metrics") return;
      deps.logger.info(
        { ...context, method: req.method, path, status: res.statusCode, durationMs: Math.round(durationMs * 10) / 10, dbRoundTrips: roundTrips.count },
        "request",
      );
    });
    // Inside the request's log context, so that what the guard logs carries the request id.
    logContext.run(context, () => meterRoundTrips(roundTrips, () => guarded(res, () => route(req, res, path, new URLSearchParams(search)))));
  }

  // Subscriptions (and any operation) over WebSocket: graphql-ws on the same port and /graphql, through the same Yoga.
  const realtime = deps.config.realtime;
  attachGraphQLWebSocket(server, yoga, deps, {
    maxOperationsPerConnection: realtime.maxSubscriptionsPerSocket,
    sendBufferBytes: realtime.sendBufferBytes,
    slowConsumerMs: realtime.slowConsumerSeconds * 1000,
    maxSocketsPerPrincipal: realtime.maxSocketsPerPrincipal,
    idleTimeoutMs: realtime.idleTimeoutSeconds * 1000,
    idleCheckMs: realtime.tokenCheckSeconds * 1000,
  });
  return server;

  /**
   * The one guard around every route: whatever a handler throws or rejects with, at once or later,
   * becomes an answer (a stable code, or a masked 500) and never reaches the process. A request can
   * fail; the server does not.
   */
  function guarded(res: ServerResponse, handle: () => Promise<void> | void): void {
    const fail = (error: unknown) => sendError(res, error, deps.logger);
    try {
      handle()?.catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> | void {
    if (req.method === "GET" && path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (req.method === "GET" && path === "/readyz") {
      return readiness().then((r) => sendJson(res, r.ok ? 200 : 503, { status: r.ok ? "ready" : "not ready", checks: r.checks }));
    }
    if (req.method === "GET" && path === "/metrics") {
      return deps.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": deps.metrics.registry.contentType, "cache-control": "no-store" });
        res.end(text);
      });
    }
    if (req.method === "GET" && path === "/.well-known/jwks.json") {
      return sendJson(res, 200, deps.verifier.jwks, { "cache-control": "public, max-age=300" });
    }
    if (consolePages(req, res, path)) return;
    // OAuth redirects and webhooks are public: counted per source address first.
    const addressPolicy = addressPolicyOf(path);
    if (addressPolicy && deps.limits.enabled) {
      return admitAddress(deps.limits, deps.logger, addressPolicy, req, res).then((admitted) => {
        if (admitted) return installations(req, res, path, query) ?? sendJson(res, 404, { error: "not found" });
      });
    }
    const exported = auditExport(req, res, path, query);
    if (exported) return exported;
    // Webhooks carry their own (larger) body limit.
    const installed = installations(req, res, path, query);
    if (installed) return installed;
    const length = Number(req.headers["content-length"] ?? 0);
    if (length > deps.config.maxBodyBytes) {
      return sendJson(
        res,
        413,
        { errors: [{ message: `request body over ${deps.config.maxBodyBytes} bytes`, extensions: { code: "BAD_USER_INPUT" } }] },
        { connection: "close" },
      );
    }
    // GraphQL bodies are small documents: a body of unknown length is refused rather than read unbounded.
    if (path === "/graphql" && req.method === "POST" && req.headers["content-length"] === undefined) {
      return sendJson(res, 411, { errors: [{ message: "Content-Length required", extensions: { code: "BAD_USER_INPUT" } }] }, { connection: "close" });
    }
    if (path === "/graphql") return Promise.resolve(yoga(req, res, { req, res })).then(() => undefined);
    sendJson(res, 404, { error: "not found" });
  }
}
