import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { systemActor, PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { issueAccessToken } from "../../src/app/sessions/issueAccessToken.ts";
import { createTenant } from "../../src/app/tenants.ts";
import { loadConfig } from "../../src/config.ts";
import type { Role, TokenKind } from "../../src/domain/eventDefinition.ts";
import { createKeyplane, type Keyplane } from "../../src/main.ts";
import type { DatabaseHandle } from "../../src/store/db.ts";
import type { Logger } from "../../src/logger.ts";
import { registerSecret, testLogger } from "./secrets.ts";
import { createTestDatabase } from "./testDatabase.ts";
import { waitFor } from "./waitFor.ts";

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  data: T;
  errors?: Array<{ message: string; path?: string[]; extensions?: Record<string, any> }>;
}

export interface TestApp {
  kp: Keyplane;
  database: DatabaseHandle;
  url: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: { token?: string; headers?: Record<string, string> }): Promise<GraphQLResponse<T>>;
  /** Mints a token with the real use case (an event is recorded, as with the CLI). */
  mintToken(grant: { tenantId: string; roles: Role[]; subject?: string; scopes?: string[]; kind?: TokenKind; ttlSeconds?: number }): Promise<string>;
  platformToken(): Promise<string>;
  /**
   * The database round trips one HTTP request made (the server's own count, BEGIN and COMMIT
   * included), with its result. One request at a time: the count is the server's, process-wide.
   */
  roundTripsOf<T>(request: () => Promise<T>): Promise<{ result: T; roundTrips: number }>;
  /** Fixture chain: a new tenant with a token per role. */
  seedTenant(options?: { tier?: "free" | "pro" | "enterprise" }): Promise<SeededTenant>;
  close(): Promise<void>;
}

export interface SeededTenant {
  tenantId: string;
  tokens: Record<"admin" | "editor" | "viewer" | "service", string>;
}

/**
 * A real Keyplane listening on a loopback port, on a fresh test database (or on a given one, to
 * play a second process sharing it).
 */
export async function createTestApp(
  options: { database?: DatabaseHandle; env?: Record<string, string>; name?: string; logger?: Logger; now?: () => Date } = {},
): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase());
  const dataDir = mkdtempSync(path.join(tmpdir(), "keyplane-test-"));
  // Suites run many requests for one tenant: request limits are off unless a suite turns them on.
  const config = loadConfig({ NODE_ENV: "test", KEYPLANE_DATA_DIR: dataDir, LOG_LEVEL: "debug", RATE_LIMITS: "off", ...options.env });
  // `now`: a testClock's, for a suite that advances time rather than sleeping.
  const kp = await createKeyplane(config, { database, logger: options.logger ?? testLogger(options.name ?? "app"), now: options.now });
  // A port given up front (providers must know the callback URL before Keyplane starts).
  const url = await kp.listen(options.env?.PORT ? Number(options.env.PORT) : 0, "127.0.0.1");

  const app: TestApp = {
    kp,
    database,
    url,
    async gql(query, variables, opts = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...opts.headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data: any; errors?: GraphQLResponse["errors"] };
      return { status: res.status, headers: res.headers, data: body.data, errors: body.errors };
    },
    async mintToken(grant) {
      const platform = grant.roles.includes("platform");
      const issued = await issueAccessToken(kp.deps, systemActor("testkit"), {
        tenantId: grant.tenantId,
        subject: grant.subject ?? `${grant.roles.join("+")}@${grant.tenantId}`,
        kind: grant.kind ?? (platform ? "platform" : grant.roles.includes("service") ? "service" : "user"),
        roles: grant.roles,
        scopes: grant.scopes ?? [],
        ttlSeconds: grant.ttlSeconds,
        issuedVia: "cli",
      });
      registerSecret(issued.accessToken);
      return issued.accessToken;
    },
    platformToken() {
      return app.mintToken({ tenantId: PLATFORM_TENANT, roles: ["platform"], subject: "operator" });
    },
    async roundTripsOf(request) {
      const read = async () => {
        const { values } = await kp.deps.metrics.httpDbRoundTrips.get();
        const total = (suffix: string) => values.filter((v) => v.metricName?.endsWith(suffix)).reduce((n, v) => n + v.value, 0);
        return { sum: total("_sum"), count: total("_count") };
      };
      const before = await read();
      const result = await request();
      // Observed when the response has finished, which the client may see a moment before.
      const after = await waitFor("the request to be counted", async () => {
        const now = await read();
        return now.count > before.count && now;
      });
      if (after.count !== before.count + 1) throw new Error(`roundTripsOf: ${after.count - before.count} requests were counted, expected one`);
      return { result, roundTrips: after.sum - before.sum };
    },
    async seedTenant(opts = {}) {
      const tenantId = `t-${randomBytes(5).toString("hex")}`;
      await createTenant(kp.deps, systemActor("testkit"), { id: tenantId, name: `Tenant ${tenantId}`, tier: opts.tier ?? "free" });
      const tokens = {} as SeededTenant["tokens"];
      for (const role of ["admin", "editor", "viewer", "service"] as const) tokens[role] = await app.mintToken({ tenantId, roles: [role] });
      return { tenantId, tokens };
    },
    async close() {
      await kp.close();
      if (!options.database) await database.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return app;
}
