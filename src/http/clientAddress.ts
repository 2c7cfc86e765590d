import { BlockList, isIP } from "node:net";
import type { IncomingMessage } from "node:http";

/**
 * The client's address behind reverse proxies. Keyplane believes X-Forwarded-For only from the
 * proxies it is told to trust (TRUSTED_PROXIES: addresses and CIDR ranges): starting from the
 * connection's peer, each trusted hop hands over to the address it forwarded for, right to left, and
 * the first untrusted address is the client. Without trusted proxies the peer is the client, whatever
 * the headers say, so a client cannot choose the address its rate limits and audit records name.
 */
export function createClientAddressResolver(trusted: readonly string[]): (req: IncomingMessage) => string | undefined {
  const peerOf = (req: IncomingMessage) => normalize(req.socket?.remoteAddress);
  if (trusted.length === 0) return peerOf;
  const list = new BlockList();
  for (const entry of trusted) {
    const [address, prefix] = entry.split("/") as [string, string | undefined];
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  const isTrusted = (address: string) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? "ipv6" : "ipv4");
  };
  return (req) => {
    let client = peerOf(req);
    if (!client || !isTrusted(client)) return client;
    const header = req.headers["x-forwarded-for"];
    const hops = (Array.isArray(header) ? header.join(",") : (header ?? ""))
      .split(",")
      .map((h) => normalize(h.trim()))
      .filter(Boolean) as string[];
    while (hops.length) {
      const next = hops.pop()!;
      if (isIP(next) === 0) return client; // a garbled hop: stop at the last address a trusted proxy vouched for
      client = next;
      if (!isTrusted(client)) return client;
    }
    return client;
  };
}

/** IPv4 in IPv6 form (::ffff:10.0.0.1, how a dual-stack socket reports IPv4 peers) as plain IPv4. */
function normalize(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1] : address;
}

const resolved = new WeakMap<IncomingMessage, string | undefined>();

/** The HTTP server records each request's client address once (server.ts, websocket.ts). */
export function rememberClientAddress(req: IncomingMessage, address: string | undefined): void {
  resolved.set(req, address);
}

/** The address the server recorded, else the connection's peer. */
export function clientAddressOf(req: IncomingMessage): string | undefined {
  return resolved.has(req) ? resolved.get(req) : req.socket?.remoteAddress;
}
