import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql, type Selectable } from "kysely";
import {
  base64url,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  UnsecuredJWT,
  type JWK,
  type JWTPayload,
} from "jose";
import { INVALID_TOKEN } from "../../src/app/authenticate.ts";
import { PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { withPlatform } from "../../src/store/db.ts";
import type { EventsTable } from "../../src/store/schema.ts";
import { startIdentityProvider, type FakeIdentityProvider } from "../fakes/identityProvider.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Every refused token answers the same: HTTP 401, UNAUTHENTICATED, one generic message. Why it was
// refused is for the auditors: one auth.failed event with the reason, in the tenant's log when the
// token's signature proved which tenant it belongs to, otherwise in the platform log.

const ME = "{ me { subject tenantId kind roles permissions tokenId } }";
const ISSUER = "keyplane";
const AUDIENCE = "keyplane";

type EventRow = Selectable<EventsTable>;

/** A P-256 PKCS#8 PEM, as an operator would put into KEYPLANE_SIGNING_KEY. */
function newSigningKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

let app: TestApp;
let pem: string;
let signingKey: KeyObject;
let kid: string;
let tenant: SeededTenant;

/**
 * Another Keyplane process on the same database and signing key. Security events are sampled per
 * process (one per tenant, reason and source per minute), so each refusal we want to see recorded
 * goes to a process that has not refused anything yet.
 */
async function freshProcess(env: Record<string, string> = {}): Promise<TestApp> {
  return createTestApp({ database: app.database, env: { KEYPLANE_SIGNING_KEY: pem, ...env }, name: "authentication" });
}

/** Claims of a token that would be accepted, for the seeded tenant's admin. */
function validClaims(overrides: JWTPayload = {}): JWTPayload {
  const now = nowSeconds();
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "mallory",
    tenant_id: tenant.tenantId,
    roles: ["admin"],
    kind: "user",
    jti: randomUUID(),
    iat: now,
    exp: now + 300,
    ...overrides,
  };
}

/** Signs claims as Keyplane would (ES256, our kid, typ at+jwt) unless the header says otherwise. */
async function forge(claims: JWTPayload, options: { key?: KeyObject | Uint8Array | CryptoKey; header?: Record<string, unknown> } = {}): Promise<string> {
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt", ...options.header } as { alg: string })
    .sign(options.key ?? signingKey);
  registerSecret(token);
  return token;
}

/** Every event whose metadata carries this request id, as stored (all tenants). */
async function eventsOfRequest(requestId: string): Promise<EventRow[]> {
  return withPlatform(app.database.db, (trx) =>
    trx.selectFrom("events").selectAll().where(sql<string>`metadata->>'requestId'`, "=", requestId).orderBy("tenant_id").orderBy("tenant_seq").execute(),
  );
}

function dataOf(row: EventRow): Record<string, any> {
  return (typeof row.data === "string" ? JSON.parse(row.data) : row.data) as Record<string, any>;
}
function metadataOf(row: EventRow): Record<string, any> {
  return (typeof row.metadata === "string" ? JSON.parse(row.metadata) : row.metadata) as Record<string, any>;
}

interface Refusal {
  reason: string;
  /** "tenant": the seeded tenant's log (signature verified); "platform": the platform log. */
  log: "tenant" | "platform" | string;
  level?: "warning" | "critical";
  /** The jti the event should name (verified tokens only). */
  tokenId?: string;
}

/**
 * Presents the token to `me` on the given process (or on a fresh one from `start`, by default with
 * the shared key, closed afterwards) and checks what the caller sees and what the auditors see.
 * Returns the stored event.
 */
async function expectRefused(token: string, expected: Refusal, on: TestApp | (() => Promise<TestApp>) = freshProcess): Promise<EventRow> {
  const target = typeof on === "function" ? await on() : on;
  try {
    const requestId = `authn-${randomUUID()}`;
    const res = await target.gql(ME, {}, { token, headers: { "x-request-id": requestId } });

    expect(res.status).toBe(401);
    expect(res.data?.me ?? null).toBeNull();
    expect(res.errors).toHaveLength(1);
    // Generic: the same message for every refused token, and no reason, claim or hint beside the code.
    expect(res.errors![0]!.message).toBe(INVALID_TOKEN);
    expect(res.errors![0]!.extensions).toEqual({ code: "UNAUTHENTICATED" });

    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => e.event_type)).toEqual(["auth.failed"]);
    const event = events[0]!;
    const tenantId = expected.log === "tenant" ? tenant.tenantId : expected.log === "platform" ? PLATFORM_TENANT : expected.log;
    expect(event.tenant_id).toBe(tenantId);
    expect(dataOf(event)).toMatchObject({ reason: expected.reason, status: "failed", level: expected.level ?? "warning", action: "authenticate" });
    if (expected.tokenId) expect(dataOf(event).details).toMatchObject({ tokenId: expected.tokenId });
    expect(metadataOf(event)).toMatchObject({ requestId, actor: { subject: "anonymous", kind: "anonymous", roles: [] } });
    expectNoTokenIn(event, token);
    return event;
  } finally {
    if (target !== on) await target.close();
  }
}

/** The stored event (every column) contains neither the token nor its signature. */
function expectNoTokenIn(event: EventRow, token: string) {
  const stored = JSON.stringify(event);
  expect(stored).not.toContain(token);
  for (const part of token.split(".")) if (part.length >= 16 && part !== token.split(".")[0]) expect(stored).not.toContain(part);
}

beforeAll(async () => {
  pem = newSigningKeyPem();
  signingKey = createPrivateKey(pem);
  app = await createTestApp({ name: "authentication", env: { KEYPLANE_SIGNING_KEY: pem } });
  tenant = await app.seedTenant();
  const jwks = (await (await fetch(`${app.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
  kid = jwks.keys[0]!.kid!;
});
afterAll(() => app?.close());

describe("a request without a token", () => {
  it("is UNAUTHENTICATED for a field that needs a principal, and recorded as reason missing in the platform log", async () => {
    const requestId = `authn-${randomUUID()}`;
    const probe = await freshProcess();
    try {
      const res = await probe.gql(ME, {}, { headers: { "x-request-id": requestId } });
      expect(res.status).toBe(401);
      expect(res.data?.me ?? null).toBeNull();
      expect(res.errors).toHaveLength(1);
      expect(res.errors![0]!.extensions).toEqual({ code: "UNAUTHENTICATED" });
      expect(res.errors![0]!.message).toBe("authentication required");
    } finally {
      await probe.close();
    }
    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => [e.tenant_id, e.event_type])).toEqual([[PLATFORM_TENANT, "auth.failed"]]);
    expect(dataOf(events[0]!)).toMatchObject({ reason: "missing", status: "failed" });
  });
});

describe("a token that is not what Keyplane issued", () => {
  // Each row builds its token once the app and its key exist.
  const cases: Array<[name: string, make: () => Promise<string>, expected: Refusal]> = [
    ["a garbled token", async () => "garbled-and-not-a-jwt-at-all-0123456789", { reason: "malformed", log: "platform" }],
    ["three segments of garbage", async () => "eyJnYXJiYWdl.bm90LWpzb24.c2lnbmF0dXJlLW9mLW5vdGhpbmc", { reason: "malformed", log: "platform" }],
    ["a header value that is not a bearer token", async () => "has spaces and !punctuation! in it", { reason: "malformed", log: "platform" }],
    [
      "an alg:none token with valid claims",
      async () => {
        const token = new UnsecuredJWT(validClaims()).encode();
        registerSecret(token);
        return token;
      },
      { reason: "unsupported-algorithm", log: "platform" },
    ],
    [
      "an HS256 token keyed with our published JWK (algorithm confusion)",
      async () => {
        const published = (await (await fetch(`${app.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
        return forge(validClaims(), { key: new TextEncoder().encode(JSON.stringify(published.keys[0])), header: { alg: "HS256" } });
      },
      { reason: "unsupported-algorithm", log: "platform" },
    ],
    [
      "an HS256 token keyed with our public key as PEM (algorithm confusion)",
      async () => {
        const spki = createPublicKey(signingKey).export({ type: "spki", format: "pem" }).toString();
        return forge(validClaims(), { key: new TextEncoder().encode(spki), header: { alg: "HS256" } });
      },
      { reason: "unsupported-algorithm", log: "platform" },
    ],
    [
      "a token signed by another ES256 key with its own kid",
      async () => {
        const other = await generateKeyPair("ES256");
        return forge(validClaims(), { key: other.privateKey, header: { kid: "attacker-key-1" } });
      },
      { reason: "unknown-key", log: "platform" },
    ],
    [
      "a token signed by another ES256 key that claims our kid",
      async () => {
        const other = await generateKeyPair("ES256");
        return forge(validClaims(), { key: other.privateKey });
      },
      { reason: "bad-signature", log: "platform" },
    ],
    [
      "a genuine token whose payload was changed after signing",
      async () => {
        const [header, , signature] = tenant.tokens.viewer.split(".");
        const claims = decodeJwt(tenant.tokens.viewer);
        const payload = base64url.encode(JSON.stringify({ ...claims, roles: ["admin"] }));
        const token = `${header}.${payload}.${signature}`;
        registerSecret(token);
        return token;
      },
      // The signature does not cover these claims, so their tenant_id must not pick the log.
      { reason: "bad-signature", log: "platform" },
    ],
    [
      "a token signed by our key for another issuer",
      async () => forge(validClaims({ iss: "https://evil.example" })),
      { reason: "wrong-issuer", log: "platform" },
    ],
    ["a token without tenant_id", async () => forge(validClaims({ tenant_id: undefined })), { reason: "invalid-claims", log: "platform" }],
    [
      "a token of a tenant that does not exist",
      async () => forge(validClaims({ tenant_id: `t-missing-${randomUUID().slice(0, 8)}` })),
      // A tenant that does not exist has no log: the platform log holds the refusal.
      { reason: "unknown-tenant", log: "platform" },
    ],
  ];

  it.each(cases)("refuses %s", async (_name, make, expected) => {
    await expectRefused(await make(), expected);
  });

  it("refuses an expired token and records it in the tenant's log", async () => {
    const jti = randomUUID();
    const token = await forge(validClaims({ jti, iat: nowSeconds() - 3600, exp: nowSeconds() - 60 }));
    await expectRefused(token, { reason: "expired", log: "tenant", tokenId: jti });
  });

  it("refuses a token that is not valid yet (nbf in the future) and records it in the tenant's log", async () => {
    const jti = randomUUID();
    const token = await forge(validClaims({ jti, nbf: nowSeconds() + 600 }));
    await expectRefused(token, { reason: "not-yet-valid", log: "tenant", tokenId: jti });
  });

  it("refuses a token for another audience and records it in the tenant's log", async () => {
    const jti = randomUUID();
    const token = await forge(validClaims({ jti, aud: "some-other-service" }));
    await expectRefused(token, { reason: "wrong-audience", log: "tenant", tokenId: jti });
  });

  it("accepts the same forged claims when they are valid (the refusals above are about the one defect each)", async () => {
    const token = await forge(validClaims({ sub: "forge-control" }));
    const res = await app.gql(ME, {}, { token });
    expect(res.errors).toBeUndefined();
    expect(res.data.me).toMatchObject({ subject: "forge-control", tenantId: tenant.tenantId, roles: ["admin"] });
  });

  it("shows the tenant's admin the refusals recorded in its log, through the audit log", async () => {
    const jti = randomUUID();
    const token = await forge(validClaims({ jti, exp: nowSeconds() - 120, iat: nowSeconds() - 600 }));
    const event = await expectRefused(token, { reason: "expired", log: "tenant", tokenId: jti });
    const res = await app.gql(
      `query($filter: AuditLogFilter) { auditLog(first: 100, filter: $filter, order: NEWEST_FIRST) { edges { node { eventId type data metadata } } } }`,
      { filter: { types: ["auth.failed"] } },
      { token: tenant.tokens.admin },
    );
    expect(res.errors).toBeUndefined();
    const node = res.data.auditLog.edges.map((e: any) => e.node).find((n: any) => n.eventId === event.event_id);
    expect(node).toMatchObject({ type: "auth.failed", data: { reason: "expired", details: { tokenId: jti } } });
    expect(JSON.stringify(node)).not.toContain(token);
  });
});

describe("a revoked token", () => {
  let other: TestApp;
  beforeAll(async () => {
    // A second process on the same database, sharing the signing key as every process must.
    other = await createTestApp({ database: app.database, env: { KEYPLANE_SIGNING_KEY: pem }, name: "authentication-second" });
  });
  afterAll(() => other?.close());

  const revoke = (admin: string, tokenId: string) =>
    app.gql(`mutation($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId revokedAt } }`, { id: tokenId }, { token: admin });

  it("is refused from the next request on, by this process and by another one sharing the database", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const before = await app.gql(ME, {}, { token: tokens.viewer });
    expect(before.errors).toBeUndefined();
    const jti: string = before.data.me.tokenId;
    // The second process verifies our tokens: it has the same key.
    expect((await other.gql(ME, {}, { token: tokens.viewer })).data?.me).toMatchObject({ tenantId, tokenId: jti });

    const revoked = await revoke(tokens.admin, jti);
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data.revokeAccessToken.tokenId).toBe(jti);

    await expectRefused(tokens.viewer, { reason: "revoked", log: tenantId, level: "critical", tokenId: jti }, app);
    await expectRefused(tokens.viewer, { reason: "revoked", log: tenantId, level: "critical", tokenId: jti }, other);

    // Only that token: the tenant's other tokens still work on both processes.
    for (const process of [app, other]) {
      for (const role of ["admin", "editor", "service"] as const) {
        const res = await process.gql(ME, {}, { token: tokens[role] });
        expect(res.errors, role).toBeUndefined();
      }
    }
  });

  it("records the revocation in the tenant's log without the token itself", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const jti: string = (await app.gql(ME, {}, { token: tokens.editor })).data.me.tokenId;
    expect((await revoke(tokens.admin, jti)).errors).toBeUndefined();
    const rows = await withPlatform(app.database.db, (trx) =>
      trx.selectFrom("events").selectAll().where("tenant_id", "=", tenantId).where("event_type", "=", "access_token.revoked").execute(),
    );
    expect(rows).toHaveLength(1);
    expect(dataOf(rows[0]!)).toMatchObject({ tokenId: jti });
    expectNoTokenIn(rows[0]!, tokens.editor);
  });

  it("cannot be revoked by another tenant's admin", async () => {
    const victim = await app.seedTenant();
    const attacker = await app.seedTenant();
    const jti: string = (await app.gql(ME, {}, { token: victim.tokens.viewer })).data.me.tokenId;
    await revoke(attacker.tokens.admin, jti);
    for (const process of [app, other]) {
      const res = await process.gql(ME, {}, { token: victim.tokens.viewer });
      expect(res.errors).toBeUndefined();
      expect(res.data.me).toMatchObject({ tenantId: victim.tenantId, tokenId: jti });
    }
    // The victim's log holds no revocation.
    const revocations = await withPlatform(app.database.db, (trx) =>
      trx.selectFrom("events").select("event_type").where("tenant_id", "=", victim.tenantId).where("event_type", "=", "access_token.revoked").execute(),
    );
    expect(revocations).toEqual([]);
  });

  it("cannot be revoked by a non-admin", async () => {
    const { tokens } = await app.seedTenant();
    const jti: string = (await app.gql(ME, {}, { token: tokens.viewer })).data.me.tokenId;
    for (const role of ["viewer", "editor", "service"] as const) {
      const res = await revoke(tokens[role], jti);
      expect(res.errors?.[0]?.extensions?.code, role).toBe("FORBIDDEN");
    }
    expect((await app.gql(ME, {}, { token: tokens.viewer })).errors).toBeUndefined();
  });
});

describe("/.well-known/jwks.json", () => {
  it("publishes the current public key, with no private parts", async () => {
    const res = await fetch(`${app.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const jwks = (await res.json()) as { keys: Array<JWK & Record<string, unknown>> };
    expect(jwks.keys.length).toBeGreaterThanOrEqual(1);
    for (const key of jwks.keys) {
      for (const secret of ["d", "p", "q", "dp", "dq", "qi", "k"]) expect(key, `JWK parameter ${secret}`).not.toHaveProperty(secret);
    }
    const expected = await exportJWK(createPublicKey(signingKey));
    expect(jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", x: expected.x, y: expected.y, alg: "ES256", use: "sig", kid: expect.any(String) });
    expect(JSON.stringify(jwks)).not.toContain(signingKey.export({ format: "jwk" }).d!);
  });

  it("verifies the tokens Keyplane issues (a relying party needs nothing else)", async () => {
    const jwks = (await (await fetch(`${app.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    const token = tenant.tokens.service;
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", kid: jwks.keys[0]!.kid, typ: "at+jwt" });
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, audience: AUDIENCE, algorithms: ["ES256"] });
    expect(payload).toMatchObject({ tenant_id: tenant.tenantId, roles: ["service"] });
  });

  it("publishes the same key on every process that shares the signing key", async () => {
    const probe = await freshProcess();
    try {
      const a = await (await fetch(`${app.url}/.well-known/jwks.json`)).json();
      const b = await (await fetch(`${probe.url}/.well-known/jwks.json`)).json();
      expect(b).toEqual(a);
    } finally {
      await probe.close();
    }
  });
});

describe("an external identity provider (AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE)", () => {
  const EXTERNAL_AUDIENCE = "keyplane-api";
  let idp: FakeIdentityProvider;
  let external: TestApp;
  const externalEnv = () => ({ AUTH_JWKS_URL: idp.jwksUrl, AUTH_ISSUER: idp.issuer, AUTH_AUDIENCE: EXTERNAL_AUDIENCE });
  const externalProcess = () => freshProcess(externalEnv());
  const signed = async (claims: JWTPayload, options?: Parameters<FakeIdentityProvider["sign"]>[1]) => {
    const token = await idp.sign(claims, options);
    registerSecret(token);
    return token;
  };

  beforeAll(async () => {
    idp = await startIdentityProvider({ audience: EXTERNAL_AUDIENCE });
    external = await freshProcess(externalEnv());
  });
  afterAll(async () => {
    await external?.close();
    await idp?.close();
  });

  it("accepts its token for a seeded tenant with the roles it grants", async () => {
    const token = await signed({ sub: "alice@example.com", tenant_id: tenant.tenantId, roles: ["viewer"] });
    const res = await external.gql(`${ME.slice(0, -1)} tenant { id } }`, {}, { token });
    expect(res.errors).toBeUndefined();
    expect(res.data.me).toMatchObject({
      subject: "alice@example.com",
      tenantId: tenant.tenantId,
      kind: "user",
      roles: ["viewer"],
      permissions: ["agent:read", "identity:link", "installation:read", "tenant:read", "token-policy:read"],
    });
    expect(res.data.tenant).toEqual({ id: tenant.tenantId });
    // Verified against the key it published, not taken on trust.
    expect(idp.jwksRequests()).toBeGreaterThanOrEqual(1);
    // Keyplane's own tokens keep working beside it.
    expect((await external.gql(ME, {}, { token: tenant.tokens.admin })).errors).toBeUndefined();
  });

  it("refuses its token for another audience, in the tenant's log", async () => {
    const token = await signed({ sub: "alice@example.com", tenant_id: tenant.tenantId, roles: ["viewer"] }, { audience: "another-api" });
    await expectRefused(token, { reason: "wrong-audience", log: "tenant" }, externalProcess);
  });

  it("refuses its expired token", async () => {
    const token = await signed({ sub: "alice@example.com", tenant_id: tenant.tenantId, roles: ["viewer"], iat: nowSeconds() - 3600, exp: nowSeconds() - 60 });
    await expectRefused(token, { reason: "expired", log: "tenant" }, externalProcess);
  });

  it("refuses a token in its name signed by another key under its kid", async () => {
    const other = await generateKeyPair("RS256");
    const now = nowSeconds();
    const token = await new SignJWT({ sub: "mallory", tenant_id: tenant.tenantId, roles: ["admin"] })
      .setProtectedHeader({ alg: "RS256", kid: idp.kid })
      .setIssuer(idp.issuer)
      .setAudience(EXTERNAL_AUDIENCE)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(other.privateKey);
    registerSecret(token);
    await expectRefused(token, { reason: "bad-signature", log: "platform" }, externalProcess);
  });

  it("refuses an HS256 token in its name keyed with its published JWK", async () => {
    const published = (await (await fetch(idp.jwksUrl)).json()) as { keys: JWK[] };
    const now = nowSeconds();
    const token = await new SignJWT({ sub: "mallory", tenant_id: tenant.tenantId, roles: ["admin"] })
      .setProtectedHeader({ alg: "HS256", kid: idp.kid })
      .setIssuer(idp.issuer)
      .setAudience(EXTERNAL_AUDIENCE)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(new TextEncoder().encode(JSON.stringify(published.keys[0])));
    registerSecret(token);
    await expectRefused(token, { reason: "unsupported-algorithm", log: "platform" }, externalProcess);
  });

  it("refuses its token for a tenant that does not exist", async () => {
    const token = await signed({ sub: "alice@example.com", tenant_id: "t-nobody-here", roles: ["admin"] });
    await expectRefused(token, { reason: "unknown-tenant", log: "platform" }, externalProcess);
  });

  // The platform role is minted by Keyplane's own CLI only (issueAccessToken refuses it outside the
  // platform tenant); a tenant's identity provider that could grant it would rule every tenant.
  // Refusing the token (UNAUTHENTICATED) or the field (FORBIDDEN) are both acceptable answers.
  const expectNoTenantList = (res: GraphQLResponse) => {
    expect(res.data?.tenants ?? null).toBeNull();
    expect(["UNAUTHENTICATED", "FORBIDDEN"]).toContain(res.errors?.[0]?.extensions?.code);
  };

  it("cannot make its users platform operators", async () => {
    const token = await signed({ sub: "eve@example.com", tenant_id: PLATFORM_TENANT, roles: ["platform"] });
    expectNoTenantList(await external.gql("{ tenants { id } }", {}, { token }));
  });

  it("cannot give a tenant's user the platform role's permissions", async () => {
    const token = await signed({ sub: "eve@example.com", tenant_id: tenant.tenantId, roles: ["viewer", "platform"] });
    expectNoTenantList(await external.gql("{ tenants { id } }", {}, { token }));
  });
});
