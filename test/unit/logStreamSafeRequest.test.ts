import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { checkDestinationUrl, DestinationRefusedError, type DestinationPolicy, type LookupAll } from "../../src/logStreams/addressPolicy.ts";
import { DeliveryTransportError, destinationAgent, safePost } from "../../src/logStreams/safeRequest.ts";
import { selfSignedCert } from "../testkit/selfSignedCert.ts";

interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

interface LocalServer {
  url: string;
  port: number;
  requests: SeenRequest[];
  /** TCP connections accepted, whether or not a request followed. */
  connections(): number;
}

const servers: NetServer[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  const closed = servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
  for (const socket of sockets) socket.destroy(); // a silent server never reads the client's close
  sockets.clear();
  await Promise.all(closed);
});

async function listen(server: NetServer): Promise<number> {
  servers.push(server);
  server.on("connection", (socket: Socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return (server.address() as AddressInfo).port;
}

/** An HTTPS server with the test certificate, which records each request and lets `answer` reply. */
async function httpsServer(answer: (req: SeenRequest, res: ServerResponse) => void): Promise<LocalServer> {
  const requests: SeenRequest[] = [];
  let connections = 0;
  const { key, cert } = selfSignedCert();
  const server = createHttpsServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const seen = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      requests.push(seen);
      answer(seen, res);
    });
  });
  server.on("connection", () => connections++);
  const port = await listen(server);
  return { url: `https://127.0.0.1:${port}`, port, requests, connections: () => connections };
}

const ok = (_req: SeenRequest, res: ServerResponse) => {
  res.writeHead(200, { "content-type": "application/json", "x-request-id": "r-1" });
  res.end(JSON.stringify({ ok: true }));
};

const trusting = (): DestinationPolicy => ({ allowedHosts: ["127.0.0.1", "localhost"], ca: selfSignedCert().cert });
const post = { headers: { "content-type": "application/json" }, body: '{"events":[]}' };

async function transportFailure(promise: Promise<unknown>): Promise<DeliveryTransportError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof DeliveryTransportError)) throw new Error(`expected a DeliveryTransportError, got ${String(error)}`);
  return error;
}

/** A DNS of the test's own: every name answers what `answer` says. */
const dns =
  (answer: (hostname: string) => string): LookupAll =>
  async (hostname) => [{ address: answer(hostname), family: 4 }];

describe("safePost", () => {
  it("posts the body and headers, and returns status, lower-case headers and body", async () => {
    const server = await httpsServer((_req, res) => {
      res.setHeader("Set-Cookie", ["a=1", "b=2"]);
      res.writeHead(202, { "Content-Type": "application/json", "Retry-After": "7" });
      res.end('{"accepted":1}');
    });
    const response = await safePost(
      new URL(`${server.url}/in?sig=1`),
      { headers: { "content-type": "application/json", authorization: "Splunk t-1" }, body: '{"event":{"n":1}}' },
      trusting(),
    );
    expect(response.status).toBe(202);
    expect(response.headers["content-type"]).toBe("application/json");
    expect(response.headers["retry-after"]).toBe("7");
    expect(response.headers["set-cookie"]).toBe("a=1, b=2");
    expect(response.body).toBe('{"accepted":1}');
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ method: "POST", path: "/in?sig=1", body: '{"event":{"n":1}}' });
    expect(server.requests[0]!.headers).toMatchObject({ authorization: "Splunk t-1", "content-length": "17" });
  });

  it("keeps one connection open across requests with a stream's own agent, and opens one per request without", async () => {
    const server = await httpsServer(ok);
    const agent = destinationAgent();
    const policy = trusting();
    try {
      for (let i = 0; i < 3; i++) expect((await safePost(new URL(server.url), { headers: {}, body: "{}", agent }, policy)).status).toBe(200);
      expect(server.connections()).toBe(1);
    } finally {
      agent.destroy();
    }
    for (let i = 0; i < 2; i++) await safePost(new URL(server.url), { headers: {}, body: "{}" }, trusting());
    expect(server.connections()).toBe(3);
  });

  it("sends a Buffer body with its byte length", async () => {
    const server = await httpsServer(ok);
    const body = Buffer.from("é€", "utf8");
    await safePost(new URL(server.url), { headers: {}, body }, trusting());
    expect(server.requests[0]!.headers["content-length"]).toBe(String(body.length));
    expect(server.requests[0]!.body).toBe("é€");
  });

  it("reaches an allow-listed name through the guarded lookup", async () => {
    const server = await httpsServer(ok);
    const response = await safePost(
      new URL(`https://localhost:${server.port}/in`),
      post,
      trusting(),
      dns(() => "127.0.0.1"),
    );
    expect(response.status).toBe(200);
  });

  it("refuses to connect to a loopback address that is not allow-listed, before any connection", async () => {
    const server = await httpsServer(ok);
    const error = await transportFailure(safePost(new URL(`${server.url}/in`), post, { allowedHosts: [], ca: selfSignedCert().cert }));
    expect(error.kind).toBe("refused-address");
    expect(error.message).toContain(`127.0.0.1:${server.port}`);
    expect(server.connections()).toBe(0);
    expect(server.requests).toHaveLength(0);
  });

  it("refuses at connection time a name whose DNS answer turned private after it was checked", async () => {
    const server = await httpsServer(ok);
    let calls = 0;
    const rebinding = dns(() => (calls++ === 0 ? "93.184.216.34" : "127.0.0.1"));
    const policy: DestinationPolicy = { allowedHosts: [], ca: selfSignedCert().cert };
    const url = await checkDestinationUrl(`https://rebind.example:${server.port}/in`, policy, rebinding);
    const error = await transportFailure(safePost(url, post, policy, rebinding));
    expect(error.kind).toBe("refused-address");
    expect(error.message).toContain("rebind.example");
    expect(calls).toBe(2);
    expect(server.connections()).toBe(0);
  });

  it("returns a redirect as the answer and does not follow it", async () => {
    const target = await httpsServer(ok);
    const server = await httpsServer((_req, res) => {
      res.writeHead(307, { location: `${target.url}/elsewhere` });
      res.end();
    });
    const response = await safePost(new URL(`${server.url}/in`), post, trusting());
    expect(response.status).toBe(307);
    expect(response.headers.location).toBe(`${target.url}/elsewhere`);
    expect(target.connections()).toBe(0);
    expect(target.requests).toHaveLength(0);
  });

  it("keeps only maxResponseBytes of a long answer, without waiting for the rest", async () => {
    const megabyte = "x".repeat(1024 * 1024);
    const server = await httpsServer((_req, res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.write(megabyte); // and more would follow: the answer never ends
    });
    const cut = await safePost(new URL(server.url), { ...post, maxResponseBytes: 1000, totalTimeoutMs: 2000 }, trusting());
    expect(cut.status).toBe(500);
    expect(cut.body).toBe("x".repeat(1000));
    const byDefault = await safePost(new URL(server.url), { ...post, totalTimeoutMs: 2000 }, trusting());
    expect(byDefault.body).toHaveLength(16_384);
  });

  it("gives up on a server that accepts the connection but never completes TLS", async () => {
    const silent = createNetServer(() => {}); // accepts, reads the ClientHello, never answers
    const port = await listen(silent);
    const started = Date.now();
    const error = await transportFailure(safePost(new URL(`https://127.0.0.1:${port}/in`), { ...post, connectTimeoutMs: 300 }, trusting()));
    expect(error.kind).toBe("timeout");
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("lets a slow answer take longer than the connect timeout, within the total one", async () => {
    const server = await httpsServer((req, res) => setTimeout(() => ok(req, res), 400));
    const response = await safePost(new URL(server.url), { ...post, connectTimeoutMs: 150, totalTimeoutMs: 5000 }, trusting());
    expect(response.status).toBe(200);
  });

  it("gives up on a server that takes the request and never answers", async () => {
    const server = await httpsServer(() => {}); // hangs
    const started = Date.now();
    const error = await transportFailure(safePost(new URL(server.url), { ...post, totalTimeoutMs: 400 }, trusting()));
    expect(error.kind).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(3000);
    expect(server.requests).toHaveLength(1);
  });

  it("gives up on an answer whose body never ends", async () => {
    const server = await httpsServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("partial");
    });
    const error = await transportFailure(safePost(new URL(server.url), { ...post, totalTimeoutMs: 400 }, trusting()));
    expect(error.kind).toBe("timeout");
  });

  it("reports a reset connection", async () => {
    const server = await httpsServer((_req, res) => res.socket?.destroy());
    const error = await transportFailure(safePost(new URL(server.url), post, trusting()));
    expect(error.kind).toBe("connection");
  });

  it("reports a refused connection", async () => {
    const closed = createNetServer();
    const port = await listen(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await transportFailure(safePost(new URL(`https://127.0.0.1:${port}/in`), post, trusting()));
    expect(error.kind).toBe("connection");
  });

  it("refuses a certificate it does not trust, or one for another name", async () => {
    const server = await httpsServer(ok);
    const untrusted = await transportFailure(safePost(new URL(server.url), post, { allowedHosts: ["127.0.0.1"] }));
    expect(untrusted.kind).toBe("tls");
    const otherName = await transportFailure(
      safePost(
        new URL(`https://other.example:${server.port}/in`),
        post,
        { allowedHosts: ["other.example"], ca: selfSignedCert().cert },
        dns(() => "127.0.0.1"),
      ),
    );
    expect(otherName.kind).toBe("tls");
    expect(server.requests).toHaveLength(0);
  });

  it("refuses http: and credentials in the URL", async () => {
    const server = await httpsServer(ok);
    const plain = await safePost(new URL(`http://127.0.0.1:${server.port}/in`), post, trusting()).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(DestinationRefusedError);
    expect((plain as DestinationRefusedError).reason).toBe("not-https");
    const withUser = await safePost(new URL(`https://u:p@127.0.0.1:${server.port}/in`), post, trusting()).catch((e: unknown) => e);
    expect((withUser as DestinationRefusedError).reason).toBe("credentials-in-url");
    expect(server.connections()).toBe(0);
  });

  it("never puts the query string or headers in its errors", async () => {
    const secret = "SECRET-7d1c";
    const request = { headers: { authorization: `Splunk ${secret}` }, body: secret, totalTimeoutMs: 300 };
    const hang = await httpsServer(() => {});
    const reset = await httpsServer((_req, res) => res.socket?.destroy());
    const failures = await Promise.all([
      transportFailure(safePost(new URL(`${hang.url}/in?token=${secret}`), request, { allowedHosts: [], ca: selfSignedCert().cert })),
      transportFailure(safePost(new URL(`${hang.url}/in?token=${secret}`), request, trusting())),
      transportFailure(safePost(new URL(`${reset.url}/in?token=${secret}`), request, trusting())),
      transportFailure(safePost(new URL(`${reset.url}/in?token=${secret}`), request, { allowedHosts: ["127.0.0.1"] })),
    ]);
    expect(failures.map((f) => f.kind)).toEqual(["refused-address", "timeout", "connection", "tls"]);
    for (const failure of failures) {
      expect(failure.message).not.toContain(secret);
      expect(failure.message).not.toContain("token=");
    }
  });
});
