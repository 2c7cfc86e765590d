import { randomBytes, randomUUID } from "node:crypto";
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { gunzipSync, inflateSync } from "node:zlib";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { selfSignedCert } from "../testkit/selfSignedCert.ts";
import { waitFor } from "../testkit/waitFor.ts";
import { authorization, randomHex, secret } from "./fakeServer.ts";

/**
 * Local fakes of the three kinds of log stream receivers, on one HTTPS origin (127.0.0.1, a free
 * port, a self-signed certificate whose PEM is `caPem`):
 *
 * - a Standard Webhooks receiver, `POST /webhook/<endpoint>`: verifies webhook-id,
 *   webhook-timestamp (5 minutes of tolerance) and webhook-signature with the `standardwebhooks`
 *   package against each of the endpoint's secrets (several during a rotation); 204, or 400 with
 *   the refusal recorded;
 * - Splunk's HTTP Event Collector, `POST /services/collector/event` (also `/services/collector`):
 *   `Authorization: Splunk <token>`, a body of concatenated JSON objects, HEC's error bodies and
 *   codes (2 token required, 3 invalid authorization, 4 invalid token, 5 no data, 6 invalid data
 *   format, 7 incorrect index, 12 event field required, 13 event field blank);
 * - Datadog's Logs intake, `POST /api/v2/logs`: `DD-API-KEY`, a JSON array (or one object) of
 *   entries, at most 1000 entries (400) and 5 MB uncompressed (413); like Datadog, an entry over
 *   1 MB is accepted truncated (the record says so); gzip and deflate bodies are accepted.
 *
 * Where the real service is less strict or less known, the fake is the stricter one: it refuses a
 * whole Splunk batch when one event is invalid (real HEC may already have indexed the events before
 * `invalid-event-number`), and Datadog bodies must be application/json (415 otherwise).
 *
 * Faults are queued per route and served one per request, first in first out, before any check;
 * a request answered by a fault has nothing accepted but is recorded in `attempts`.
 */

export type LogRoute = "webhook" | "splunk" | "datadog";

export type ReceiverFault =
  | { status: 500 | 502 | 503; body?: string }
  | { status: 429; retryAfter?: number }
  | { status: 401 | 403 | 404; body?: string }
  /** Answers normally (checks included) after the delay: a slow receiver. */
  | { delayMs: number }
  /** Reads the request, then closes the connection without answering. */
  | { reset: true }
  /** Reads the request and never answers, until the sender gives up or the fakes close. */
  | { hang: true };

/** The envelope a Keyplane webhook carries. */
export interface WebhookBody {
  type: "keyplane.audit_events";
  tenantId: string;
  logStreamId: string;
  events: Record<string, unknown>[];
}

export interface WebhookDelivery {
  route: "webhook";
  endpoint: string;
  webhookId: string;
  /** webhook-timestamp, seconds since the epoch. */
  timestamp: number;
  tenantId: string;
  logStreamId: string;
  /** The endpoint secret the signature matched. */
  matchedSecret: string;
  event: Record<string, unknown>;
}

export interface SplunkDelivery {
  route: "splunk";
  event: unknown;
  /** Epoch seconds, possibly fractional. */
  time?: number;
  host?: string;
  source?: string;
  sourcetype?: string;
  index?: string;
}

export interface DatadogDelivery {
  route: "datadog";
  /** The entry's message as sent (cut at 1 MB when `truncated`). */
  message?: string;
  /** The message parsed as JSON, when it is JSON. */
  event: unknown;
  ddsource?: string;
  ddtags?: string;
  hostname?: string;
  service?: string;
  truncated: boolean;
}

export interface AcceptedByRoute {
  webhook: WebhookDelivery;
  splunk: SplunkDelivery;
  datadog: DatadogDelivery;
}

export interface ReceiverAttempt {
  route: LogRoute;
  path: string;
  /** The status answered; null when the connection was reset or the request hung. */
  status: number | null;
  outcome: "answered" | "reset" | "hung";
  /** Why a request was refused, in the receiver's words (e.g. "bad-signature", "Invalid token"). */
  refusal?: string;
  fault?: ReceiverFault;
  /** Lower-case names; the values of Authorization and DD-API-KEY are replaced by "[redacted]". */
  headers: Record<string, string>;
  bodyBytes: number;
}

export interface StartLogReceiversOptions {
  /** Splunk HEC tokens that are valid; default one new token (`splunkToken`). */
  splunkTokens?: string[];
  /** Indexes Splunk accepts in an event's `index`; default any. */
  splunkIndexes?: string[];
  /** Datadog API keys that are valid; default one new key (`datadogApiKey`). */
  datadogApiKeys?: string[];
}

export interface LogReceivers {
  /** https://127.0.0.1:<port> */
  url: string;
  /** The server certificate (self-signed), for the sender's extra CA. */
  caPem: string;
  /** `${url}/services/collector/event` */
  splunkUrl: string;
  /** `${url}/api/v2/logs` */
  datadogUrl: string;
  /** The first valid Splunk token. */
  splunkToken: string;
  /** The first valid Datadog API key. */
  datadogApiKey: string;
  /** Registers (or replaces the secrets of) a webhook endpoint; returns its URL. */
  webhookEndpoint(name: string, secrets: string[]): string;
  setSplunkTokens(tokens: string[]): void;
  /** undefined: any index. */
  setSplunkIndexes(indexes: string[] | undefined): void;
  setDatadogApiKeys(keys: string[]): void;
  /** Queues faults for the next requests of a route. */
  fail(route: LogRoute, ...faults: ReceiverFault[]): void;
  /** Events accepted so far, in arrival order. */
  accepted<R extends LogRoute>(route: R): AcceptedByRoute[R][];
  /** Every request received on the route, in arrival order. */
  attempts(route: LogRoute): ReceiverAttempt[];
  /** Waits until at least `count` events were accepted on the route; returns them all. */
  waitForAccepted<R extends LogRoute>(route: R, count: number, timeoutMs?: number): Promise<AcceptedByRoute[R][]>;
  /** Stops the server, ending hung and delayed requests. */
  close(): Promise<void>;
}

/** A new Standard Webhooks secret: whsec_ and the base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return secret(`whsec_${randomBytes(32).toString("base64")}`);
}

/** A new token in the shape of Splunk's (a UUID). */
export function newSplunkToken(): string {
  return secret(randomUUID());
}

/** A new key in the shape of Datadog's (32 hexadecimal digits). */
export function newDatadogApiKey(): string {
  return secret(randomHex(16));
}

const MB = 1024 * 1024;
const DATADOG_MAX_PAYLOAD = 5 * MB;
const DATADOG_MAX_ENTRY = MB;
const DATADOG_MAX_ENTRIES = 1000;

/** An answer of a receiver: JSON, text, or empty. */
interface Answer {
  status: number;
  json?: unknown;
  text?: string;
  headers?: Record<string, string>;
  refusal?: string;
}

interface Received {
  route: LogRoute;
  /** The path after the route's prefix (the webhook endpoint). */
  rest: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export async function startLogReceivers(options: StartLogReceiversOptions = {}): Promise<LogReceivers> {
  const { key, cert } = selfSignedCert();
  const endpoints = new Map<string, { secret: string; webhook: Webhook }[]>();
  let splunkTokens = (options.splunkTokens ?? [newSplunkToken()]).map(secret);
  let splunkIndexes = options.splunkIndexes;
  let datadogApiKeys = (options.datadogApiKeys ?? [newDatadogApiKey()]).map(secret);
  const faults: Record<LogRoute, ReceiverFault[]> = { webhook: [], splunk: [], datadog: [] };
  const accepted: { [R in LogRoute]: AcceptedByRoute[R][] } = { webhook: [], splunk: [], datadog: [] };
  const attempts: ReceiverAttempt[] = [];
  const timers = new Set<NodeJS.Timeout>();

  // ---- Standard Webhooks ----
  const webhook = ({ rest, headers, body }: Received): Answer => {
    const secrets = endpoints.get(rest);
    if (!secrets) return { status: 404, text: "Not Found", refusal: "unknown-endpoint" };
    const flat: Record<string, string> = {};
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const value = headers[name];
      if (typeof value === "string") flat[name] = value;
    }
    let matched: string | undefined;
    let refusal = "bad-signature";
    for (const candidate of secrets) {
      try {
        candidate.webhook.verify(body, flat, { jsonParse: false });
        matched = candidate.secret;
        break;
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
        refusal = webhookRefusal(error.message);
      }
    }
    if (matched === undefined) return { status: 400, text: refusal, refusal };
    const payload = parseJson(body.toString("utf8"));
    if (!isWebhookBody(payload)) return { status: 400, text: "unexpected-body", refusal: "unexpected-body" };
    const envelope = {
      route: "webhook" as const,
      endpoint: rest,
      webhookId: flat["webhook-id"]!,
      timestamp: Number(flat["webhook-timestamp"]),
      tenantId: payload.tenantId,
      logStreamId: payload.logStreamId,
      matchedSecret: matched,
    };
    for (const event of payload.events) accepted.webhook.push({ ...envelope, event });
    return { status: 204 };
  };

  // ---- Splunk HTTP Event Collector ----
  const splunkError = (status: number, text: string, code: number, invalidEvent?: number): Answer => ({
    status,
    json: invalidEvent === undefined ? { text, code } : { text, code, "invalid-event-number": invalidEvent },
    refusal: text,
  });
  const splunk = ({ headers, body }: Received): Answer => {
    const auth = authorization(headers);
    if (!headers.authorization) return splunkError(401, "Token is required", 2);
    if (auth?.scheme !== "splunk") return splunkError(401, "Invalid authorization", 3);
    if (!splunkTokens.includes(auth.credentials)) return splunkError(403, "Invalid token", 4);
    const text = decoded(headers, body, Number.POSITIVE_INFINITY);
    if (typeof text !== "string") return splunkError(400, "Invalid data format", 6, 0);
    const objects = parseConcatenatedObjects(text);
    if ("invalidAt" in objects) return splunkError(400, "Invalid data format", 6, objects.invalidAt);
    if (objects.values.length === 0) return splunkError(400, "No data", 5);
    const events: SplunkDelivery[] = [];
    for (const [n, object] of objects.values.entries()) {
      if (!("event" in object)) return splunkError(400, "Event field is required", 12, n);
      if (object.event === null || (typeof object.event === "string" && object.event.trim() === "")) {
        return splunkError(400, "Event field cannot be blank", 13, n);
      }
      const time = object.time === undefined ? undefined : typeof object.time === "string" ? Number(object.time) : object.time;
      if (time !== undefined && (typeof time !== "number" || !Number.isFinite(time))) return splunkError(400, "Invalid data format", 6, n);
      const index = optionalString(object.index);
      if (index !== undefined && splunkIndexes !== undefined && !splunkIndexes.includes(index)) return splunkError(400, "Incorrect index", 7, n);
      events.push({
        route: "splunk",
        event: object.event,
        time,
        host: optionalString(object.host),
        source: optionalString(object.source),
        sourcetype: optionalString(object.sourcetype),
        index,
      });
    }
    accepted.splunk.push(...events);
    return { status: 200, json: { text: "Success", code: 0 } };
  };

  // ---- Datadog Logs intake ----
  const datadogError = (status: number, error: string): Answer => ({ status, json: { errors: [error] }, refusal: error });
  const datadog = ({ headers, body }: Received): Answer => {
    const apiKey = headers["dd-api-key"];
    if (typeof apiKey !== "string" || !datadogApiKeys.includes(apiKey)) return datadogError(403, "Forbidden");
    const type = (headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") return datadogError(415, "Unsupported Media Type");
    const text = decoded(headers, body, DATADOG_MAX_PAYLOAD);
    if (text === "too-large") return datadogError(413, "Request Entity Too Large");
    if (text === undefined) return datadogError(400, "Bad Request");
    const payload = parseJson(text);
    const entries = Array.isArray(payload) ? payload : isObject(payload) ? [payload] : undefined;
    if (!entries?.every(isObject)) return datadogError(400, "Bad Request");
    if (entries.length > DATADOG_MAX_ENTRIES) return datadogError(400, `Too many log entries: at most ${DATADOG_MAX_ENTRIES} per request`);
    for (const entry of entries) {
      const raw = optionalString(entry.message);
      const truncated = raw !== undefined && Buffer.byteLength(raw) > DATADOG_MAX_ENTRY;
      const message = truncated ? Buffer.from(raw).subarray(0, DATADOG_MAX_ENTRY).toString("utf8") : raw;
      accepted.datadog.push({
        route: "datadog",
        message,
        event: message === undefined ? undefined : parseJson(message),
        ddsource: optionalString(entry.ddsource),
        ddtags: optionalString(entry.ddtags),
        hostname: optionalString(entry.hostname),
        service: optionalString(entry.service),
        truncated,
      });
    }
    return { status: 202, json: {} };
  };

  const routes: Record<LogRoute, (received: Received) => Answer> = { webhook, splunk, datadog };

  const send = (res: ServerResponse, attempt: ReceiverAttempt, answer: Answer) => {
    attempt.status = answer.status;
    if (answer.refusal !== undefined) attempt.refusal = answer.refusal;
    const headers: Record<string, string> = { ...answer.headers };
    let payload: string | undefined;
    if (answer.json !== undefined) {
      headers["content-type"] = "application/json; charset=utf-8";
      payload = JSON.stringify(answer.json);
    } else if (answer.text !== undefined) {
      headers["content-type"] = "text/plain; charset=utf-8";
      payload = answer.text;
    }
    res.writeHead(answer.status, headers);
    res.end(payload);
  };

  const faultAnswer = (route: LogRoute, fault: { status: number; body?: string; retryAfter?: number }): Answer => {
    const statusText = STATUS_CODES[fault.status] ?? "Error";
    const headers: Record<string, string> = fault.retryAfter === undefined ? {} : { "retry-after": String(fault.retryAfter) };
    if (fault.body !== undefined) return { status: fault.status, text: fault.body, headers };
    if (route === "splunk") return { status: fault.status, json: { text: fault.status === 503 ? "Server is busy" : statusText, code: 9 }, headers };
    if (route === "datadog") return { status: fault.status, json: { errors: [statusText] }, headers };
    return { status: fault.status, text: statusText, headers };
  };

  const server = createServer({ key, cert }, (req, res) => {
    const path = new URL(req.url ?? "/", "https://fake.invalid").pathname;
    const route = routeOf(path);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (!route) {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("Not Found");
        return;
      }
      const body = Buffer.concat(chunks);
      const attempt: ReceiverAttempt = { route: route.route, path, status: null, outcome: "answered", headers: redacted(req.headers), bodyBytes: body.length };
      attempts.push(attempt);
      const answer = () => {
        if (req.method !== "POST") return send(res, attempt, { status: 405, text: "Method Not Allowed", refusal: "method" });
        send(res, attempt, routes[route.route]({ route: route.route, rest: route.rest, headers: req.headers, body }));
      };
      const fault = faults[route.route].shift();
      if (fault) attempt.fault = fault;
      if (!fault) return answer();
      if ("reset" in fault) {
        attempt.outcome = "reset";
        req.socket.destroy();
      } else if ("hang" in fault) {
        attempt.outcome = "hung";
      } else if ("delayMs" in fault) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          answer();
        }, fault.delayMs);
        timers.add(timer);
      } else {
        send(res, attempt, faultAnswer(route.route, fault));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    caPem: cert,
    splunkUrl: `${url}/services/collector/event`,
    datadogUrl: `${url}/api/v2/logs`,
    get splunkToken() {
      return splunkTokens[0]!;
    },
    get datadogApiKey() {
      return datadogApiKeys[0]!;
    },
    webhookEndpoint(name, secrets) {
      endpoints.set(
        name,
        secrets.map((s) => ({ secret: secret(s), webhook: new Webhook(s) })),
      );
      return `${url}/webhook/${name}`;
    },
    setSplunkTokens(tokens) {
      splunkTokens = tokens.map(secret);
    },
    setSplunkIndexes(indexes) {
      splunkIndexes = indexes;
    },
    setDatadogApiKeys(keys) {
      datadogApiKeys = keys.map(secret);
    },
    fail(route, ...queued) {
      faults[route].push(...queued);
    },
    accepted: (route) => [...(accepted[route] as AcceptedByRoute[typeof route][])],
    attempts: (route) => attempts.filter((a) => a.route === route),
    waitForAccepted(route, count, timeoutMs) {
      return waitFor(
        `${count} events accepted by the ${route} receiver`,
        () => accepted[route].length >= count && [...(accepted[route] as AcceptedByRoute[typeof route][])],
        timeoutMs,
      );
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function routeOf(path: string): { route: LogRoute; rest: string } | undefined {
  const hook = /^\/webhook\/([^/]+)$/.exec(path);
  if (hook) return { route: "webhook", rest: decodeURIComponent(hook[1]!) };
  if (path === "/services/collector" || path === "/services/collector/event" || path === "/services/collector/event/1.0") return { route: "splunk", rest: "" };
  if (path === "/api/v2/logs") return { route: "datadog", rest: "" };
  return undefined;
}

function webhookRefusal(message: string): string {
  if (message === "Missing required headers") return "missing-headers";
  if (message === "Message timestamp too old") return "stale-timestamp";
  if (message === "Message timestamp too new") return "future-timestamp";
  if (message === "Invalid Signature Headers") return "bad-timestamp";
  return "bad-signature";
}

function redacted(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = name === "authorization" || name === "dd-api-key" ? "[redacted]" : Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/**
 * The body as text after Content-Encoding (gzip, deflate or none): "too-large" past `limit` bytes
 * uncompressed, undefined when it does not decode.
 */
function decoded(headers: IncomingMessage["headers"], body: Buffer, limit: number): string | "too-large" | undefined {
  const encoding = (headers["content-encoding"] ?? "identity").trim().toLowerCase();
  let raw: Buffer;
  try {
    const bounded = Number.isFinite(limit) ? { maxOutputLength: limit + 1 } : {};
    if (encoding === "gzip") raw = gunzipSync(body, bounded);
    else if (encoding === "deflate") raw = inflateSync(body, bounded);
    else if (encoding === "identity") raw = body;
    else return undefined;
  } catch (error) {
    return error instanceof RangeError ? "too-large" : undefined;
  }
  if (raw.length > limit) return "too-large";
  return raw.toString("utf8");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function isWebhookBody(value: unknown): value is WebhookBody {
  return (
    isObject(value) &&
    value.type === "keyplane.audit_events" &&
    typeof value.tenantId === "string" &&
    typeof value.logStreamId === "string" &&
    Array.isArray(value.events) &&
    value.events.every(isObject)
  );
}

/**
 * JSON objects written one after another, as HEC takes them (`{…}{…}` or one per line). Returns
 * them, or the number of the first one that is not a well-formed object.
 */
export function parseConcatenatedObjects(text: string): { values: Record<string, unknown>[] } | { invalidAt: number } {
  const values: Record<string, unknown>[] = [];
  let i = 0;
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) return { values };
    if (text[i] !== "{") return { invalidAt: values.length };
    const start = i;
    let depth = 0;
    let inString = false;
    for (; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === "\\") i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) break;
      }
    }
    if (depth !== 0) return { invalidAt: values.length };
    i++;
    const value = parseJson(text.slice(start, i));
    if (!isObject(value)) return { invalidAt: values.length };
    values.push(value);
  }
}
