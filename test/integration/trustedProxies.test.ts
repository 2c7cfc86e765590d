import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { createClientAddressResolver } from "../../src/http/clientAddress.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

const request = (peer: string, forwardedFor?: string | string[]) =>
  ({ socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor } }) as unknown as IncomingMessage;

describe("the client's address behind reverse proxies", () => {
  it("believes X-Forwarded-For only from trusted proxies, right to left", () => {
    const none = createClientAddressResolver([]);
    expect(none(request("10.1.2.3", "198.51.100.7"))).toBe("10.1.2.3");
    expect(none(request("::ffff:10.1.2.3"))).toBe("10.1.2.3");

    const resolve = createClientAddressResolver(["10.0.0.0/8", "192.0.2.10", "fd00::/8"]);
    expect(resolve(request("10.1.2.3", "198.51.100.7"))).toBe("198.51.100.7");
    expect(resolve(request("::ffff:10.1.2.3", "198.51.100.7"))).toBe("198.51.100.7");
    // Two proxies: the client is the first address no trusted proxy sent.
    expect(resolve(request("10.1.2.3", "198.51.100.7, 192.0.2.10"))).toBe("198.51.100.7");
    expect(resolve(request("10.1.2.3", ["198.51.100.7", "10.9.9.9"]))).toBe("198.51.100.7");
    // What a client wrote itself, left of an untrusted hop, is not believed.
    expect(resolve(request("10.1.2.3", "203.0.113.66, 198.51.100.7"))).toBe("198.51.100.7");
    // An untrusted peer's header is ignored.
    expect(resolve(request("198.51.100.9", "203.0.113.66"))).toBe("198.51.100.9");
    // A garbled hop ends the walk at the last address a trusted proxy vouched for.
    expect(resolve(request("10.1.2.3", "not-an-ip"))).toBe("10.1.2.3");
    expect(resolve(request("10.1.2.3", ""))).toBe("10.1.2.3");
    expect(resolve(request("fd12::1", "2001:db8::5"))).toBe("2001:db8::5");
    // Only trusted hops: the leftmost.
    expect(resolve(request("10.1.2.3", "10.4.4.4"))).toBe("10.4.4.4");
  });

  it("refuses a malformed TRUSTED_PROXIES at start-up, naming it", () => {
    expect(loadConfig({ TRUSTED_PROXIES: " 10.0.0.0/8 , 192.168.1.1,::1 " }).trustedProxies).toEqual(["10.0.0.0/8", "192.168.1.1", "::1"]);
    expect(loadConfig({}).trustedProxies).toEqual([]);
    for (const bad of ["10.0.0.0/33", "proxy.internal", "10.0.0.0/8/1", "fd00::/129", "10.0.0.0/x"]) {
      expect(() => loadConfig({ TRUSTED_PROXIES: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ TRUSTED_PROXIES: bad })).toThrow(/TRUSTED_PROXIES/);
    }
  });
});

describe("per-address limits behind a proxy", () => {
  const env = {
    RATE_LIMITS: "on",
    RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "3",
    RATE_LIMIT_BURST_PER_10_SECONDS: "free:1000",
    RATE_LIMIT_REQUESTS_PER_MINUTE: "free:1000",
  };
  let behindProxy: TestApp;
  let direct: TestApp;
  let tenant: SeededTenant;
  let directTenant: SeededTenant;
  beforeAll(async () => {
    behindProxy = await createTestApp({ env: { ...env, TRUSTED_PROXIES: "127.0.0.1" }, name: "proxied" });
    tenant = await behindProxy.seedTenant({ tier: "free" });
    direct = await createTestApp({ env, name: "direct" });
    directTenant = await direct.seedTenant({ tier: "free" });
  });
  afterAll(async () => {
    await behindProxy?.close();
    await direct?.close();
  });

  const me = (app: TestApp, token: string, forwardedFor: string) => app.gql("{ me { subject } }", {}, { token, headers: { "x-forwarded-for": forwardedFor } });
  /** Six refused tokens one after the other: each is counted before its refusal is answered, so no wait between them. */
  async function flood(app: TestApp, forwardedFor: string): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await me(app, "not-a-jwt", forwardedFor)).status);
    return statuses;
  }

  it("refuses only the client that keeps presenting bad credentials, not everyone behind the proxy", async () => {
    const statuses = await flood(behindProxy, "198.51.100.7");
    expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
    expect(statuses.at(-1)).toBe(429);
    // Another client behind the same proxy is not affected, even when it presents a bad token.
    expect((await me(behindProxy, tenant.tokens.viewer, "198.51.100.8")).status).toBe(200);
    expect((await me(behindProxy, "not-a-jwt", "198.51.100.8")).status).toBe(401);
    // The flooding client's refused tokens stay refused for it (a valid token is never refused for failures).
    expect((await me(behindProxy, "not-a-jwt", "198.51.100.7")).status).toBe(429);
    expect((await me(behindProxy, tenant.tokens.viewer, "198.51.100.7")).status).toBe(200);
  });

  it("without trusted proxies, ignores X-Forwarded-For: a client cannot pick the address it is counted under", async () => {
    const statuses = await flood(direct, "203.0.113.1");
    expect(statuses.at(-1)).toBe(429);
    // A bad token under a different header from the same connection's address is refused too.
    expect((await me(direct, "not-a-jwt", "203.0.113.2")).status).toBe(429);
    expect((await me(direct, directTenant.tokens.viewer, "203.0.113.2")).status).toBe(200);
  });
});
