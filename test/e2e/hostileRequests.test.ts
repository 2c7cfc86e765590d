import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scratchDirectory } from "../testkit/scratch.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";

// Anonymous hostile requests against a real `keyplane serve`: malformed percent-encoding, invalid
// UTF-8, oversized and duplicated headers on every route and on the WebSocket upgrade, and a
// fragment fan-out document. Whatever the answer, the process must still be there and /healthz must
// answer. Rate limits off and on: the OAuth routes failed differently in each (a synchronous throw,
// an unhandled rejection).

const scratch = scratchDirectory("keyplane-hostile-");

const ROUTES = [
  "/graphql",
  "/oauth/install/github",
  "/oauth/callback/github",
  "/webhooks/github",
  "/audit/export",
  "/.well-known/jwks.json",
  "/metrics",
  "/healthz",
  "/readyz",
];

interface RawAnswer {
  status: number | null;
  head: string;
  body: string;
}

/** Sends `request` as it is (bytes no HTTP client would send) and reads the answer until the server closes. */
function raw(port: number, request: Buffer | string, timeoutMs = 10_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${String(request).slice(0, 80)}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const head = split === -1 ? text : text.slice(0, split);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
      resolve({ status: status ? Number(status) : null, head, body: split === -1 ? "" : text.slice(split + 4) });
    };
    socket.on("data", (chunk) => {
      chunks.push(chunk);
      // A WebSocket that was accepted stays open: its head is the answer.
      if (/^HTTP\/1\.1 101/.test(Buffer.concat(chunks).toString("latin1"))) socket.destroy();
    });
    socket.on("close", done);
    socket.on("error", () => {}); // a reset after the answer is still an answer (read on close)
    socket.write(request);
  });
}

const crlf = (lines: string[], body = "") => `${lines.join("\r\n")}\r\n\r\n${body}`;

/** Every hostile shape, for one route: request line and headers as the route would get them. */
function hostileRequests(route: string): Array<{ name: string; request: Buffer | string }> {
  const method = route === "/graphql" || route === "/webhooks/github" ? "POST" : "GET";
  const json = method === "POST" ? ["content-type: application/json", "content-length: 2"] : [];
  const body = method === "POST" ? "{}" : "";
  const line = (path: string) => `${method} ${path} HTTP/1.1`;
  const base = ["host: 127.0.0.1", "connection: close"];
  return [
    { name: "malformed percent-encoding in the path", request: crlf([line(`${route}/%E0%A4%A`), ...base, ...json], body) },
    { name: "%ZZ in the path", request: crlf([line(`${route}%ZZ`), ...base, ...json], body) },
    { name: "malformed percent-encoding in the query", request: crlf([line(`${route}?%E0%A4%A=%ZZ&state=%&code=%ff%fe`), ...base, ...json], body) },
    {
      name: "invalid UTF-8 bytes in the path",
      request: Buffer.concat([
        Buffer.from(`${method} ${route}/`),
        Buffer.from([0xc3, 0x28, 0xff, 0xfe]),
        Buffer.from(` HTTP/1.1\r\n${[...base, ...json].join("\r\n")}\r\n\r\n${body}`),
      ]),
    },
    {
      name: "invalid UTF-8 in header values",
      request: Buffer.concat([
        Buffer.from(`${line(route)}\r\n${[...base, ...json].join("\r\n")}\r\n`),
        Buffer.from("authorization: Bearer "),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
        Buffer.from("\r\nx-request-id: "),
        Buffer.from([0xe0, 0xa4]),
        Buffer.from("\r\nx-forwarded-for: "),
        Buffer.from([0xf0, 0x28, 0x8c, 0x28]),
        Buffer.from("\r\nx-hub-signature-256: sha256="),
        Buffer.from([0xff]),
        Buffer.from(`\r\ntraceparent: 00-\xff-\xfe-01\r\nidempotency-key: \xff\xff\xff\xff\xff\xff\xff\xff\r\n\r\n${body}`, "latin1"),
      ]),
    },
    { name: "an oversized header", request: crlf([line(route), ...base, ...json, `authorization: Bearer ${"a".repeat(64 * 1024)}`], body) },
    { name: "many headers", request: crlf([line(route), ...base, ...json, ...Array.from({ length: 3000 }, (_, i) => `x-h${i}: ${i}`)], body) },
    {
      name: "duplicated headers",
      request: crlf(
        [
          line(route),
          ...base,
          ...json,
          "authorization: Bearer a.b.c",
          "authorization: Bearer d.e.f",
          "x-request-id: one",
          "x-request-id: two",
          "x-forwarded-for: 10.0.0.1",
          "x-forwarded-for: 10.0.0.2",
          "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          "idempotency-key: aaaaaaaaaa",
          "idempotency-key: bbbbbbbbbb",
          "x-github-delivery: 1",
          "x-github-delivery: 2",
          "x-hub-signature-256: sha256=00",
          "x-hub-signature-256: sha256=11",
          "content-type: text/plain",
        ],
        body,
      ),
    },
    {
      name: "two different Content-Length headers",
      request: crlf([line(route), ...base, "content-type: application/json", "content-length: 2", "content-length: 3"], "{}"),
    },
  ];
}

/** Hostile WebSocket upgrades on /graphql (and beside it). */
function hostileUpgrades(): Array<{ name: string; request: Buffer | string }> {
  const upgrade = ["host: 127.0.0.1", "connection: Upgrade", "upgrade: websocket", "sec-websocket-version: 13", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ=="];
  return [
    { name: "malformed percent-encoding in the upgrade path", request: crlf(["GET /graphql/%E0%A4%A HTTP/1.1", ...upgrade]) },
    {
      name: "malformed query on the upgrade",
      request: crlf(["GET /graphql?%ZZ=%E0%A4%A HTTP/1.1", ...upgrade, "sec-websocket-protocol: graphql-transport-ws"]),
    },
    { name: "no key", request: crlf(["GET /graphql HTTP/1.1", "host: 127.0.0.1", "connection: Upgrade", "upgrade: websocket", "sec-websocket-version: 13"]) },
    { name: "a bad version", request: crlf(["GET /graphql HTTP/1.1", ...upgrade.slice(0, 3), "sec-websocket-version: 99", upgrade[4]!]) },
    {
      name: "invalid UTF-8 in the protocol and request id",
      request: Buffer.concat([
        Buffer.from(`GET /graphql HTTP/1.1\r\n${upgrade.join("\r\n")}\r\nsec-websocket-protocol: `),
        Buffer.from([0xff, 0xfe]),
        Buffer.from("\r\nx-request-id: "),
        Buffer.from([0xc3, 0x28]),
        Buffer.from("\r\n\r\n"),
      ]),
    },
    {
      name: "duplicated upgrade headers",
      request: crlf([
        "GET /graphql HTTP/1.1",
        ...upgrade,
        "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==",
        "sec-websocket-protocol: graphql-transport-ws",
        "sec-websocket-protocol: graphql-ws",
        "x-forwarded-for: 1.1.1.1",
        "x-forwarded-for: 2.2.2.2",
      ]),
    },
    {
      name: "an oversized upgrade header",
      request: crlf(["GET /graphql HTTP/1.1", ...upgrade, `sec-websocket-protocol: ${"graphql-transport-ws,".repeat(4000)}`]),
    },
  ];
}

async function healthz(served: Served): Promise<number> {
  const res = await fetch(`${served.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return res.status;
}

function stillServing(served: Served) {
  expect(served.child.exitCode, served.output()).toBeNull();
  expect(served.child.signalCode, served.output()).toBeNull();
}

/** The fragment fan-out: k spreads over four levels, 3 KB for k = 120; `salt` makes each document a new one (no cache). */
function fanOut(k: number, salt: number): string {
  const spreads = (n: number) => Array.from({ length: k }, () => `...F${n}`).join(" ");
  return `query Q${salt} { ${spreads(1)} } fragment F1 on Query { ${spreads(2)} } fragment F2 on Query { ${spreads(3)} } fragment F3 on Query { ${spreads(4)} } fragment F4 on Query { __typename }`;
}

describe.each([
  { limits: "off", env: { RATE_LIMITS: "off" } },
  { limits: "on", env: { RATE_LIMITS: "on" } },
])("keyplane serve with rate limits $limits, under hostile requests", ({ limits, env }) => {
  let served: Served;

  beforeAll(async () => {
    served = await serveProcess(`hostile-${limits}`, { KEYPLANE_DATA_DIR: scratch.fresh(), ...env });
  });
  afterAll(killServedProcesses);

  it("answers a malformed OAuth path segment with 400 BAD_USER_INPUT, and stays up", async () => {
    for (const path of ["/oauth/callback/%E0%A4%A", "/oauth/install/%ZZ"]) {
      const res = await fetch(`${served.url}${path}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "BAD_USER_INPUT", field: "platform" } });
    }
    // A NUL or a lone surrogate, percent-encoded, in what reaches the provider and the database.
    for (const [path, field] of [
      ["/oauth/callback/github?code=abc&state=%00", "query.state"],
      ["/oauth/callback/github?code=a%00b&state=abc", "query.code"],
      ["/oauth/install/git%00hub", "platform"],
    ]) {
      const res = await fetch(`${served.url}${path}`, { redirect: "manual" });
      expect(res.status, path).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "BAD_USER_INPUT", field } });
    }
    stillServing(served);
    expect(await healthz(served)).toBe(200);
  });

  it.each(ROUTES)("survives every hostile shape on %s", async (route) => {
    for (const { name, request } of hostileRequests(route)) {
      const answer = await raw(served.port, request);
      // An answer, never a hang or a cut: Node's parser refuses what is not HTTP (400, 431), the
      // routes refuse the rest with a status below 500.
      expect(answer.status, `${route}: ${name}\n${answer.head}`).not.toBeNull();
      expect(answer.status!, `${route}: ${name}\n${answer.head}\n${answer.body}`).toBeLessThan(500);
      stillServing(served);
    }
    expect(await healthz(served)).toBe(200);
  });

  it("survives hostile WebSocket upgrades", async () => {
    for (const { name, request } of hostileUpgrades()) {
      const answer = await raw(served.port, request);
      expect(answer.status, `${name}\n${answer.head}`).not.toBeNull();
      expect(answer.status!, `${name}\n${answer.head}`).toBeLessThan(500);
      stillServing(served);
    }
    expect(await healthz(served)).toBe(200);
  });

  it("keeps answering /healthz within 100 ms while 50 fragment fan-out documents arrive", async () => {
    expect(fanOut(120, 0).length).toBeLessThan(3200);
    // Warm (the first documents run through graphql-js before the JIT has compiled it).
    for (let i = 0; i < 3; i++)
      await (
        await fetch(`${served.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ query: fanOut(120, 1000 + i) }),
        })
      ).arrayBuffer();
    let sending = true;
    const latencies: number[] = [];
    const probing = (async () => {
      while (sending) {
        const started = performance.now();
        expect(await healthz(served)).toBe(200);
        latencies.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    // Two clients, 25 documents each, no token.
    const statuses = await Promise.all(
      Array.from({ length: 2 }, async (_, client) => {
        const seen: number[] = [];
        for (let i = 0; i < 25; i++) {
          const res = await fetch(`${served.url}/graphql`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ query: fanOut(120, client * 25 + i) }),
          });
          await res.arrayBuffer();
          seen.push(res.status);
        }
        return seen;
      }),
    );
    sending = false;
    await probing;
    expect(statuses.flat()).toHaveLength(50);
    expect(statuses.flat().every((s) => s < 500)).toBe(true);
    // Before, each document held the event loop for 25 s. Now a document costs milliseconds and
    // /healthz answers within 100 ms. The bound is held by the median probe, and the slowest stays
    // under a second: on a loaded machine (other suites on the same two cores) a probe may wait
    // behind the documents in flight, which is queueing, not blocking.
    expect(latencies.length).toBeGreaterThan(0);
    const sorted = [...latencies].sort((a, b) => a - b);
    expect(sorted[Math.floor(sorted.length / 2)]!).toBeLessThan(100);
    expect(sorted.at(-1)!).toBeLessThan(1000);
    stillServing(served);
  });
});
