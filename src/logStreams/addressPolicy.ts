import { promises as dns, type LookupAddress } from "node:dns";
import { BlockList, isIP, type LookupFunction } from "node:net";

// Which destinations a log stream may send to. A tenant names the URL, so without this check it
// could make Keyplane post to its own network (the cloud metadata service, a database, an admin
// port): server-side request forgery. The URL is checked when the stream is created, and every
// connection checks the addresses its DNS answer gives, since that answer can change afterwards.

export interface DestinationPolicy {
  /**
   * Hostnames or IP literals (LOG_STREAM_ALLOWED_HOSTS) that may resolve to private or loopback
   * addresses: a receiver on the operator's own network, or a test's local fake. Exact matches only.
   */
  allowedHosts: readonly string[];
  /** An extra CA (PEM) the operator trusts, besides the public roots. */
  ca?: string;
}

export type LookupAll = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

export const lookupAll: LookupAll = async (hostname) => {
  const answers = await dns.lookup(hostname, { all: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
};

export type DestinationRefusal = "not-https" | "credentials-in-url" | "bad-url" | "private-address" | "unresolvable";

/** The code of the error the guarded lookup fails a connection with. */
export const REFUSED_ADDRESS_CODE = "EKEYPLANE_REFUSED_ADDRESS";

export class DestinationRefusedError extends Error {
  /** Set on refusals of an address, so that code reading `err.code` (like Node's net) can tell them apart. */
  readonly code: string | undefined;

  constructor(
    readonly reason: DestinationRefusal,
    message: string,
  ) {
    super(message);
    this.name = "DestinationRefusedError";
    this.code = reason === "private-address" ? REFUSED_ADDRESS_CODE : undefined;
  }
}

/**
 * scheme://host[:port]/path of a URL: never its query string or credentials, which may hold a
 * secret (a token in `?token=`, a password before `@`), nor a path segment that looks like one (16
 * or more letters, digits, `_` or `-`, with both letters and digits: hooks such as
 * /services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX carry their secret in the path), shown as `****`.
 */
export function describeDestination(url: URL): string {
  const path = url.pathname
    .split("/")
    .map((segment) => (/^[A-Za-z0-9_-]{16,}$/.test(segment) && /[0-9]/.test(segment) && /[A-Za-z]/.test(segment) ? "****" : segment))
    .join("/");
  return `${url.protocol}//${url.host}${path}`;
}

const blockList = (subnets: [string, number][], type: "ipv4" | "ipv6") => {
  const list = new BlockList();
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, type);
  return list;
};

// Every IPv4 range that is not a globally reachable unicast address (IANA special-purpose registry).
const nonPublicIPv4 = blockList(
  [
    ["0.0.0.0", 8], // "this network", includes the unspecified 0.0.0.0
    ["10.0.0.0", 8], // private
    ["100.64.0.0", 10], // carrier-grade NAT
    ["127.0.0.0", 8], // loopback
    ["169.254.0.0", 16], // link-local, includes the cloud metadata service 169.254.169.254
    ["172.16.0.0", 12], // private
    ["192.0.0.0", 24], // IETF protocol assignments
    ["192.0.2.0", 24], // documentation (TEST-NET-1)
    ["192.88.99.0", 24], // 6to4 relay anycast (deprecated)
    ["192.168.0.0", 16], // private
    ["198.18.0.0", 15], // benchmarking
    ["198.51.100.0", 24], // documentation (TEST-NET-2)
    ["203.0.113.0", 24], // documentation (TEST-NET-3)
    ["224.0.0.0", 4], // multicast
    ["240.0.0.0", 4], // reserved, includes the broadcast 255.255.255.255
  ],
  "ipv4",
);

// IPv6 is judged by allow-list: only global unicast (2000::/3) can be public. That alone excludes
// ::, ::1, unique-local fc00::/7 (and AWS's metadata fd00:ec2::254), link-local fe80::/10,
// multicast ff00::/8 and the discard prefix 100::/64.
const globalUnicastIPv6 = blockList([["2000::", 3]], "ipv6");
const nonPublicGlobalIPv6 = blockList(
  [
    // IETF protocol assignments: Teredo 2001::/32 (a tunnel to an IPv4 address we cannot see, so
    // refused outright), benchmarking 2001:2::/48, ORCHID and a few anycast services.
    ["2001::", 23],
    ["2001:db8::", 32], // documentation
    ["2002::", 16], // 6to4: a tunnel to an embedded IPv4 address, refused outright like Teredo
    ["3fff::", 20], // documentation (RFC 9637)
  ],
  "ipv6",
);

/**
 * Whether `ip` is a globally reachable unicast address. Anything else (loopback, private,
 * link-local, multicast, reserved, documentation, not an IP at all) is not public. An IPv6 address
 * that carries an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96) is judged by that IPv4.
 */
export function isPublicAddress(ip: string): boolean {
  const address = ip.replace(/%.*$/, ""); // an IPv6 zone id ("fe80::1%eth0") names an interface, not a host
  const version = isIP(address);
  if (version === 4) return !nonPublicIPv4.check(address, "ipv4");
  if (version !== 6) return false;
  const embedded = embeddedIPv4(address);
  if (embedded !== undefined) return isPublicAddress(embedded);
  return globalUnicastIPv6.check(address, "ipv6") && !nonPublicGlobalIPv6.check(address, "ipv6");
}

/** The IPv4 address inside an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedIPv4(ipv6: string): string | undefined {
  const hextets = ipv6Hextets(ipv6);
  if (!hextets) return undefined;
  const prefix = hextets.slice(0, 6).join(":");
  if (prefix !== "0:0:0:0:0:65535" && prefix !== "100:65435:0:0:0:0") return undefined; // 0x64 = 100, 0xff9b = 65435
  const [high, low] = [hextets[6]!, hextets[7]!];
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
}

/** The eight 16-bit groups of a valid IPv6 address (which may end in a dotted IPv4). */
function ipv6Hextets(ipv6: string): number[] | undefined {
  let text = ipv6.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined) => (half ? half.split(":").map((g) => Number.parseInt(g, 16)) : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 0) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** The URL's hostname as DNS and the allow-list see it: no IPv6 brackets, no trailing root dot. */
function bareHostname(hostname: string): string {
  return hostname
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "")
    .toLowerCase();
}

function isAllowListed(hostname: string, policy: DestinationPolicy): boolean {
  const host = bareHostname(hostname);
  return policy.allowedHosts.some((allowed) => bareHostname(allowed.trim()) === host);
}

/** Refusal of a host whose address is not public, or undefined when it may be reached. */
export function refusedAddresses(hostname: string, addresses: readonly string[], policy: DestinationPolicy): DestinationRefusedError | undefined {
  if (isAllowListed(hostname, policy) || addresses.every(isPublicAddress)) return undefined;
  const host = bareHostname(hostname);
  const what = isIP(host) ? `${host} is` : `${host} resolves to`;
  return new DestinationRefusedError(
    "private-address",
    `${what} a private, loopback or otherwise non-public address; an operator can allow this host with LOG_STREAM_ALLOWED_HOSTS`,
  );
}

/** The hostname of a URL when it is an IP literal (brackets removed), else undefined. */
export function ipLiteralHost(url: URL): string | undefined {
  const host = bareHostname(url.hostname);
  return isIP(host) ? host : undefined;
}

/**
 * The check of a destination URL when a log stream is created or changed: https only, no
 * credentials in the URL, and a host that resolves only to public addresses (unless allow-listed).
 */
export async function checkDestinationUrl(raw: string, policy: DestinationPolicy, lookup: LookupAll = lookupAll): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DestinationRefusedError("bad-url", "the destination is not a valid absolute URL");
  }
  const shown = describeDestination(url);
  if (url.protocol !== "https:") throw new DestinationRefusedError("not-https", `the destination ${shown} must use https:`);
  if (url.username !== "" || url.password !== "") {
    throw new DestinationRefusedError("credentials-in-url", `the destination ${shown} must not carry credentials in the URL; give them as the stream's secret`);
  }
  const literal = ipLiteralHost(url);
  if (literal !== undefined) {
    const refusal = refusedAddresses(literal, [literal], policy);
    if (refusal) throw refusal;
    return url;
  }
  const host = bareHostname(url.hostname);
  let addresses: string[];
  try {
    addresses = (await lookup(host)).map((a) => a.address);
  } catch {
    addresses = [];
  }
  if (addresses.length === 0) throw new DestinationRefusedError("unresolvable", `the destination host ${host} does not resolve`);
  const refusal = refusedAddresses(host, addresses, policy);
  if (refusal) throw refusal;
  return url;
}

/**
 * A `lookup` for `https.request` that refuses, at each connection, a host whose addresses are not
 * all public (unless allow-listed): a DNS answer that turns to 127.0.0.1 after the stream was
 * checked is refused too. Node's net asks for every address (`all: true`) when it tries IPv4 and
 * IPv6 in turn (autoSelectFamily, on by default since Node 20), and for one otherwise; both work.
 * Node does not call `lookup` for a hostname that is an IP literal: check those with
 * `refusedAddresses` before connecting.
 */
export function guardedLookup(policy: DestinationPolicy, lookup: LookupAll = lookupAll): LookupFunction {
  return (hostname, options, callback) => {
    const family = options.family === 4 || options.family === "IPv4" ? 4 : options.family === 6 || options.family === "IPv6" ? 6 : 0;
    lookup(hostname).then(
      (answers) => {
        const usable = answers.filter((a) => family === 0 || a.family === family);
        if (usable.length === 0) {
          const error: NodeJS.ErrnoException = new Error(`the host ${bareHostname(hostname)} does not resolve`);
          error.code = "ENOTFOUND";
          callback(error, "");
          return;
        }
        const refusal = refusedAddresses(
          hostname,
          usable.map((a) => a.address),
          policy,
        );
        if (refusal) callback(refusal, "");
        else if (options.all) callback(null, usable satisfies LookupAddress[]);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ""),
    );
  };
}
