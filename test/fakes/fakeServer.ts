import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes, randomInt } from "node:crypto";
import { registerSecret } from "../testkit/secrets.ts";

/**
 * Shared plumbing of the local fakes of third-party services (GitHub, Slack, Atlassian): an HTTP
 * server on 127.0.0.1 and a free port, body parsing (JSON and form), a request log that never holds
 * bodies, query strings or headers (codes and tokens travel there), and a clock that tests can skew.
 */

export interface RequestLogEntry {
  method: string;
  /** Path without the query string. */
  path: string;
  status: number;
}

export interface FakeRequest {
  method: string;
  /** Path without the query string, percent-decoding left to the route. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /** "json" when the body parsed as JSON, "form" for application/x-www-form-urlencoded, "none" when empty. */
  bodyType: "json" | "form" | "none" | "invalid" | "other";
  /** Parsed JSON value (any type), or the form fields as an object of strings; {} when none. */
  body: unknown;
}

export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  /** Serialized as JSON with content-type application/json; charset=utf-8. */
  json?: unknown;
  /** Sent as is; set content-type in headers (defaults to text/plain). */
  text?: string;
  /** 302 redirect target (sets Location). */
  redirect?: string;
}

export interface FakeClock {
  /** Milliseconds since the epoch, as the fake service sees it: Date.now() plus the offset. */
  now(): number;
  /** Skews the service's clock relative to this machine's (positive: the service is ahead). */
  setClockOffset(ms: number): void;
  clockOffset(): number;
}

export function createClock(): FakeClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    setClockOffset: (ms) => {
      offset = ms;
    },
    clockOffset: () => offset,
  };
}

export interface FakeServer {
  /** Origin, e.g. http://127.0.0.1:43121 (no trailing slash). */
  url: string;
  requests: RequestLogEntry[];
  close(): Promise<void>;
}

export async function startFakeServer(options: {
  clock: FakeClock;
  handle: (req: FakeRequest, origin: string) => FakeResponse | Promise<FakeResponse>;
}): Promise<FakeServer> {
  const requests: RequestLogEntry[] = [];
  let origin = "";

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      const url = new URL(req.url ?? "/", "http://fake.invalid");
      const request: FakeRequest = {
        method: (req.method ?? "GET").toUpperCase(),
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        rawBody,
        ...parseBody(req.headers["content-type"], rawBody),
      };
      Promise.resolve()
        .then(() => options.handle(request, origin))
        .catch((error: unknown): FakeResponse => {
          // A bug in a fake: answer 500 without echoing anything from the request.
          console.error(`fake server error on ${request.method} ${request.path}:`, error instanceof Error ? error.message : error);
          return { status: 500, json: { message: "fake server error" } };
        })
        .then((response) => {
          requests.push({ method: request.method, path: request.path, status: response.status });
          const headers: Record<string, string> = { date: new Date(options.clock.now()).toUTCString(), ...(response.headers ?? {}) };
          let payload: string | undefined;
          if (response.redirect !== undefined) {
            headers.location = response.redirect;
          }
          if (response.json !== undefined) {
            headers["content-type"] ??= "application/json; charset=utf-8";
            payload = JSON.stringify(response.json);
          } else if (response.text !== undefined) {
            headers["content-type"] ??= "text/plain; charset=utf-8";
            payload = response.text;
          }
          res.writeHead(response.status, headers);
          res.end(payload);
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;

  return {
    url: origin,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function parseBody(contentType: string | undefined, raw: Buffer): Pick<FakeRequest, "body" | "bodyType"> {
  if (raw.length === 0) return { body: {}, bodyType: "none" };
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  const text = raw.toString("utf8");
  if (type === "application/json" || type.endsWith("+json")) {
    try {
      return { body: JSON.parse(text) as unknown, bodyType: "json" };
    } catch {
      return { body: {}, bodyType: "invalid" };
    }
  }
  if (type === "application/x-www-form-urlencoded") {
    return { body: Object.fromEntries(new URLSearchParams(text)), bodyType: "form" };
  }
  return { body: {}, bodyType: "other" };
}

/** The body as a record of strings (JSON objects keep only their string and number fields). */
export function bodyFields(req: FakeRequest): Record<string, string> {
  const out: Record<string, string> = {};
  if (req.body && typeof req.body === "object" && !Array.isArray(req.body)) {
    for (const [k, v] of Object.entries(req.body as Record<string, unknown>)) {
      if (typeof v === "string") out[k] = v;
      else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
    }
  }
  return out;
}

/** Credentials of an `Authorization` header, the scheme compared case-insensitively. */
export function authorization(headers: IncomingHttpHeaders): { scheme: string; credentials: string } | undefined {
  const value = headers.authorization;
  if (!value) return undefined;
  const match = /^\s*([A-Za-z0-9._~+/-]+)\s+(.+?)\s*$/.exec(value);
  if (!match) return undefined;
  return { scheme: match[1]!.toLowerCase(), credentials: match[2]! };
}

export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const auth = authorization(headers);
  return auth && auth.scheme === "bearer" ? auth.credentials : undefined;
}

export function basicCredentials(headers: IncomingHttpHeaders): { user: string; password: string } | undefined {
  const auth = authorization(headers);
  if (auth?.scheme !== "basic") return undefined;
  const decoded = Buffer.from(auth.credentials, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decodeURIComponent(decoded.slice(0, colon)), password: decodeURIComponent(decoded.slice(colon + 1)) };
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random string over [A-Za-z0-9] (or the given alphabet), uniformly drawn. */
export function randomString(length: number, alphabet = ALNUM): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/**
 * Registers a value the fake handed out (token, code, client secret) with the test log scan, which
 * fails the run when any registered value appears in a log line. Returns the value.
 */
export function secret<T extends string>(value: T): T {
  registerSecret(value);
  return value;
}

/** Appends query parameters to a URL that may already carry some. */
export function withQuery(base: string, params: Record<string, string | undefined>): string {
  const url = new URL(base);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}

export function htmlPage(status: number, title: string, message: string): FakeResponse {
  const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return {
    status,
    headers: { "content-type": "text/html; charset=utf-8" },
    text: `<!DOCTYPE html><html><head><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`,
  };
}
