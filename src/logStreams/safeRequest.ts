import { Agent, request as httpsRequest } from "node:https";
import type { IncomingMessage } from "node:http";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import {
  DestinationRefusedError,
  type DestinationPolicy,
  describeDestination,
  guardedLookup,
  ipLiteralHost,
  type LookupAll,
  lookupAll,
  REFUSED_ADDRESS_CODE,
  refusedAddresses,
} from "./addressPolicy.ts";

// The only way Keyplane sends to a log stream's destination. Every request checks the addresses it
// connects to, follows no redirect (a 3xx could point anywhere, including our own network), reads
// at most a small part of the answer, and ends within its timeouts, so that a slow or hostile
// receiver costs a bounded amount of time and memory.

export interface SafeRequest {
  headers: Record<string, string>;
  body: string | Buffer;
  /** Resolving, connecting and the TLS handshake; default 5000. */
  connectTimeoutMs?: number;
  /** The whole exchange, until the answer is read; default 15000. */
  totalTimeoutMs?: number;
  /** Bytes of the answer's body kept; the rest is never read. Default 16384. */
  maxResponseBytes?: number;
  /**
   * A connection pool of one destination (destinationAgent): its connection is kept open between
   * requests. Without one, every request opens (and checks) a connection of its own.
   */
  agent?: Agent;
}

/**
 * A kept-alive connection to one stream's destination, never shared with another stream: the
 * addresses are checked each time it connects, and an idle connection closes after a few seconds
 * (before a receiver's usual keep-alive timeout). destroy() when the stream is done with it.
 */
export function destinationAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, timeout: 4000, scheduling: "lifo" });
}

const secureContexts = new WeakMap<DestinationPolicy, SecureContext>();

/**
 * The public roots plus the operator's CA, as one TLS context per policy: building it parses every
 * root certificate (about 4 ms), which per request was most of a delivery's cost.
 */
function secureContextOf(policy: DestinationPolicy): SecureContext | undefined {
  if (!policy.ca) return undefined;
  let context = secureContexts.get(policy);
  if (!context) secureContexts.set(policy, (context = createSecureContext({ ca: [...rootCertificates, policy.ca] })));
  return context;
}

export interface SafeResponse {
  status: number;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  /** At most maxResponseBytes bytes of the body, decoded as UTF-8. */
  body: string;
}

export type DeliveryTransportFailure = "refused-address" | "timeout" | "connection" | "tls";

/** The request got no answer. The message names host and port only: the query string and headers may hold secrets. */
export class DeliveryTransportError extends Error {
  constructor(
    readonly kind: DeliveryTransportFailure,
    message: string,
  ) {
    super(message);
    this.name = "DeliveryTransportError";
  }
}

// Codes of certificate checks (OpenSSL's verify errors as Node names them) and of the TLS layer.
const TLS_CODES = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_CHAIN_TOO_LONG",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED",
  "HOSTNAME_MISMATCH",
  "EPROTO",
]);
const isTlsCode = (code: string) => TLS_CODES.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_");

export async function safePost(url: URL, request: SafeRequest, policy: DestinationPolicy, lookup: LookupAll = lookupAll): Promise<SafeResponse> {
  if (url.protocol !== "https:") throw new DestinationRefusedError("not-https", `the destination ${describeDestination(url)} must use https:`);
  if (url.username !== "" || url.password !== "") {
    throw new DestinationRefusedError("credentials-in-url", `the destination ${describeDestination(url)} must not carry credentials in the URL`);
  }
  const where = `${url.hostname}:${url.port || "443"}`;
  // Node connects to an IP literal without calling `lookup`, so the guard sees only names.
  const literal = ipLiteralHost(url);
  if (literal !== undefined && refusedAddresses(literal, [literal], policy)) {
    throw new DeliveryTransportError("refused-address", `refused to connect to ${where}: not a public address`);
  }

  const connectTimeoutMs = request.connectTimeoutMs ?? 5000;
  const totalTimeoutMs = request.totalTimeoutMs ?? 15_000;
  const maxResponseBytes = request.maxResponseBytes ?? 16_384;
  const body = typeof request.body === "string" ? Buffer.from(request.body, "utf8") : request.body;

  return new Promise<SafeResponse>((resolve, reject) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      outcome();
    };
    const fail = (error: DeliveryTransportError) =>
      finish(() => {
        reject(error);
        req.destroy();
      });

    const secureContext = secureContextOf(policy);
    const req = httpsRequest(url, {
      method: "POST",
      headers: { ...request.headers, "content-length": String(body.length) },
      lookup: guardedLookup(policy, lookup),
      ...(secureContext ? { secureContext } : {}),
      // Without the stream's own pool, no pooled connection: each request resolves and checks its
      // addresses again, and a socket opened for one destination never carries another's request.
      agent: request.agent ?? false,
    });

    timers.push(
      setTimeout(() => fail(new DeliveryTransportError("timeout", `no connection to ${where} within ${connectTimeoutMs} ms`)), connectTimeoutMs),
      setTimeout(() => fail(new DeliveryTransportError("timeout", `no complete answer from ${where} within ${totalTimeoutMs} ms`)), totalTimeoutMs),
    );
    // A kept-alive connection is connected already; a new one is once its TLS handshake is done.
    req.on("socket", (socket) => (socket.connecting ? socket.once("secureConnect", () => clearTimeout(timers[0])) : clearTimeout(timers[0])));
    req.on("error", (error: NodeJS.ErrnoException) => fail(transportError(error, where)));
    req.on("response", (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const answer = (complete: boolean) =>
        finish(() => {
          resolve({ status: res.statusCode ?? 0, headers: flatHeaders(res), body: Buffer.concat(chunks).subarray(0, maxResponseBytes).toString("utf8") });
          // Whatever is left of a long body is not read: the connection is closed instead (a
          // complete answer leaves it to its pool, if any).
          if (!complete) res.destroy();
        });
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= maxResponseBytes) answer(false);
      });
      res.on("end", () => answer(true));
      res.on("error", (error: NodeJS.ErrnoException) => fail(transportError(error, where)));
    });
    req.end(body);
  });
}

function transportError(error: NodeJS.ErrnoException, where: string): DeliveryTransportError {
  const code = error.code ?? "";
  if (error instanceof DestinationRefusedError || code === REFUSED_ADDRESS_CODE) {
    return new DeliveryTransportError("refused-address", `refused to connect to ${where}: ${error.message}`);
  }
  if (isTlsCode(code)) return new DeliveryTransportError("tls", `TLS with ${where} failed: ${code}`);
  // Refused, reset (also in the middle of the handshake: the peer closed, no certificate was
  // judged), "socket hang up", broken pipe, a name that no longer resolves.
  return new DeliveryTransportError("connection", `connection to ${where} failed: ${code || error.message}`);
}

function flatHeaders(res: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}
