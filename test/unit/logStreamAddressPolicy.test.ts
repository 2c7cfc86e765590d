import { describe, expect, it } from "vitest";
import {
  checkDestinationUrl,
  DestinationRefusedError,
  type DestinationPolicy,
  describeDestination,
  isPublicAddress,
  type LookupAll,
} from "../../src/logStreams/addressPolicy.ts";

// A DNS of our own: each name answers what the test needs, anything else does not resolve.
const answers: Record<string, string[]> = {
  "receiver.example": ["93.184.216.34"],
  "dual.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
  "rebind.example": ["127.0.0.1"],
  "mixed.example": ["93.184.216.34", "10.0.0.7"],
  "metadata.example": ["169.254.169.254"],
  "v6private.example": ["fd00:ec2::254"],
  localhost: ["127.0.0.1", "::1"],
};
const lookup: LookupAll = async (hostname) => {
  const found = answers[hostname];
  if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
  return found.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
};

const strict: DestinationPolicy = { allowedHosts: [] };

async function refusal(raw: string, policy: DestinationPolicy = strict): Promise<DestinationRefusedError> {
  const error = await checkDestinationUrl(raw, policy, lookup).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof DestinationRefusedError)) throw new Error(`expected ${raw} to be refused, got ${String(error)}`);
  return error;
}

describe("isPublicAddress", () => {
  it.each([
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "this network"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.0.0.1", "private 10/8"],
    ["10.255.255.255", "private 10/8"],
    ["172.16.0.1", "private 172.16/12"],
    ["172.31.255.255", "private 172.16/12"],
    ["192.168.1.1", "private 192.168/16"],
    ["169.254.169.254", "cloud metadata (link-local)"],
    ["169.254.0.1", "link-local"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["100.127.255.255", "carrier-grade NAT"],
    ["224.0.0.251", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["192.0.2.10", "documentation TEST-NET-1"],
    ["198.51.100.10", "documentation TEST-NET-2"],
    ["203.0.113.10", "documentation TEST-NET-3"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["192.0.0.8", "IETF protocol assignments"],
  ])("refuses IPv4 %s (%s)", (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it.each([
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["fc00::1", "unique local"],
    ["fd12:3456:789a::1", "unique local"],
    ["fd00:ec2::254", "AWS metadata (unique local)"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local with a zone"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation (RFC 9637)"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"],
    ["2002:c000:0201::1", "6to4"],
    ["2001:2::1", "benchmarking"],
    ["100::1", "discard-only"],
    ["::ffff:127.0.0.1", "IPv4-mapped loopback"],
    ["::ffff:7f00:1", "IPv4-mapped loopback, hex"],
    ["::ffff:169.254.169.254", "IPv4-mapped metadata"],
    ["::ffff:10.1.2.3", "IPv4-mapped private"],
    ["64:ff9b::7f00:1", "NAT64 of loopback"],
    ["64:ff9b::192.168.0.1", "NAT64 of private"],
    ["::127.0.0.1", "IPv4-compatible (deprecated)"],
  ])("refuses IPv6 %s (%s)", (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it.each([
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1", // just past 172.16/12
    "100.128.0.1", // just past 100.64/10
    "169.255.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822", // NAT64 of 93.184.216.34
  ])("accepts the public address %s", (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
  });

  it("refuses what is not an address", () => {
    expect(isPublicAddress("example.com")).toBe(false);
    expect(isPublicAddress("")).toBe(false);
    expect(isPublicAddress("999.1.1.1")).toBe(false);
  });
});

describe("checkDestinationUrl", () => {
  it("accepts an https URL whose host resolves to public addresses only", async () => {
    const url = await checkDestinationUrl("https://receiver.example/hooks/keyplane?sig=abc", strict, lookup);
    expect(url.href).toBe("https://receiver.example/hooks/keyplane?sig=abc");
    await expect(checkDestinationUrl("https://dual.example:8443/in", strict, lookup)).resolves.toBeInstanceOf(URL);
    await expect(checkDestinationUrl("https://93.184.216.34/in", strict, lookup)).resolves.toBeInstanceOf(URL);
  });

  it("refuses anything but https", async () => {
    for (const raw of ["http://receiver.example/in", "ftp://receiver.example/in", "file:///etc/passwd", "wss://receiver.example/"]) {
      expect((await refusal(raw)).reason).toBe("not-https");
    }
  });

  it("refuses credentials in the URL without repeating them", async () => {
    const error = await refusal("https://keyplane:hunter2-password@receiver.example/in");
    expect(error.reason).toBe("credentials-in-url");
    expect(error.message).toContain("https://receiver.example/in");
    expect(error.message).not.toContain("hunter2");
    expect(error.message).not.toContain("keyplane:");
    expect((await refusal("https://only-user@receiver.example/in")).reason).toBe("credentials-in-url");
  });

  it("refuses what is not a URL", async () => {
    const error = await refusal("receiver.example/in?token=s3cr3t-token");
    expect(error.reason).toBe("bad-url");
    expect(error.message).not.toContain("s3cr3t-token");
  });

  it.each([
    "https://127.0.0.1/in",
    "https://10.1.2.3/in",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/in",
    "https://[fd00:ec2::254]/latest/",
    "https://[::ffff:127.0.0.1]/in",
    "https://0x7f.1/in", // WHATWG URL turns this into 127.0.0.1
    "https://2130706433/in", // so this
    "https://0.0.0.0/in",
  ])("refuses the IP literal of %s", async (raw) => {
    expect((await refusal(raw)).reason).toBe("private-address");
  });

  it("refuses a name that resolves to loopback, metadata or a private IPv6 address", async () => {
    for (const host of ["rebind.example", "metadata.example", "v6private.example", "localhost"]) {
      const error = await refusal(`https://${host}/in`);
      expect(error.reason).toBe("private-address");
      expect(error.message).toContain(host);
    }
  });

  it("refuses a name when any one of its addresses is private", async () => {
    expect((await refusal("https://mixed.example/in")).reason).toBe("private-address");
  });

  it("refuses a name that does not resolve", async () => {
    const error = await refusal("https://nowhere.example/in");
    expect(error.reason).toBe("unresolvable");
    expect(error.message).toContain("nowhere.example");
  });

  it("accepts allow-listed hosts on private addresses, and only those", async () => {
    const policy: DestinationPolicy = { allowedHosts: ["127.0.0.1", "LOCALHOST", "::1"] };
    await expect(checkDestinationUrl("https://127.0.0.1:8443/in", policy, lookup)).resolves.toBeInstanceOf(URL);
    await expect(checkDestinationUrl("https://localhost:8443/in", policy, lookup)).resolves.toBeInstanceOf(URL);
    await expect(checkDestinationUrl("https://[::1]:8443/in", policy, lookup)).resolves.toBeInstanceOf(URL);
    expect((await refusal("https://rebind.example/in", policy)).reason).toBe("private-address");
    expect((await refusal("https://10.0.0.1/in", policy)).reason).toBe("private-address");
    // The allow-list opens private addresses, not plain http.
    expect((await refusal("http://127.0.0.1:8443/in", policy)).reason).toBe("not-https");
  });

  it("never shows the query string or the credentials of a refused URL", async () => {
    const secret = "QUERY-SECRET-93f1";
    const raws = [
      `http://receiver.example/in?token=${secret}`,
      `https://user:${secret}@receiver.example/in?token=${secret}`,
      `https://127.0.0.1/in?token=${secret}`,
      `https://rebind.example/in?token=${secret}#${secret}`,
      `https://nowhere.example/in?token=${secret}`,
      `not a url ${secret}`,
    ];
    for (const raw of raws) {
      const error = await refusal(raw);
      expect(error.message).not.toContain(secret);
      expect(String(error.stack)).not.toContain(secret);
    }
  });
});

describe("describeDestination", () => {
  it("shows scheme, host and path, never the query, credentials or a token-like path segment", () => {
    expect(describeDestination(new URL("https://user:pw@siem.example.com:8443/in/keyplane?token=abc123"))).toBe("https://siem.example.com:8443/in/keyplane");
    expect(describeDestination(new URL("https://hooks.example.com/services/T0001/B0002/Xy7kq2LmNp9RsTuVwZ1a"))).toBe(
      "https://hooks.example.com/services/T0001/B0002/****",
    );
    // Long words without digits, and digits alone, are not taken for secrets.
    expect(describeDestination(new URL("https://h.example/audit-events-for-keyplane/12345678901234567890"))).toBe(
      "https://h.example/audit-events-for-keyplane/12345678901234567890",
    );
  });
});
