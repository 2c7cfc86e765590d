import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Selectable } from "kysely";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { mintSignInCode } from "../../src/app/sessions/signInCode.ts";
import { loadSigningKeys } from "../../src/auth/signingKeys.ts";
import { createTokenMinter } from "../../src/auth/tokenMinter.ts";
import { withPlatform } from "../../src/store/db.ts";
import type { EventsTable } from "../../src/store/schema.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type TestApp } from "../testkit/testApp.ts";
import { testClock } from "../testkit/testClock.ts";

// Refreshable service tokens: an access token plus a refresh token that may be spent once. Spending
// it again (a copy in a thief's hands, or the client's) revokes the whole family.

const ME = "{ me { subject tenantId kind roles tokenId } }";
const ISSUE = `mutation($input: IssueServiceTokenInput!) {
  issueServiceToken(input: $input) { accessToken tokenId expiresAt refreshToken refreshExpiresAt }
}`;
const REFRESH = `mutation($refreshToken: String!) {
  refreshSession(refreshToken: $refreshToken) { accessToken tokenId expiresAt refreshToken refreshExpiresAt }
}`;

interface Pair {
  accessToken: string;
  tokenId: string;
  expiresAt: string;
  refreshToken: string;
  refreshExpiresAt: string;
}

type EventRow = Selectable<EventsTable>;

let app: TestApp;
// Sign-in codes expire by Keyplane's clock: the last test moves it.
const clock = testClock();
beforeAll(async () => {
  app = await createTestApp({ name: "sessions", now: clock.now });
});
afterAll(() => app?.close());

function remember(pair: Pair | null | undefined): Pair {
  expect(pair).toBeTruthy();
  registerSecret(pair!.accessToken);
  registerSecret(pair!.refreshToken);
  return pair!;
}

async function issue(adminToken: string, subject = "ci-runner"): Promise<Pair> {
  const res = await app.gql(ISSUE, { input: { subject, refreshable: true } }, { token: adminToken });
  expect(res.errors).toBeUndefined();
  return remember(res.data.issueServiceToken);
}

function refresh(refreshToken: string, options: { token?: string; requestId?: string } = {}): Promise<GraphQLResponse> {
  return app.gql(
    REFRESH,
    { refreshToken },
    { ...(options.token ? { token: options.token } : {}), headers: options.requestId ? { "x-request-id": options.requestId } : {} },
  );
}

async function refreshOk(refreshToken: string): Promise<Pair> {
  const res = await refresh(refreshToken);
  expect(res.errors).toBeUndefined();
  return remember(res.data.refreshSession);
}

function expectUnauthenticated(res: GraphQLResponse) {
  expect(res.status).toBe(401);
  expect(res.errors).toHaveLength(1);
  expect(res.errors![0]!.extensions?.code).toBe("UNAUTHENTICATED");
}

async function me(token: string): Promise<GraphQLResponse> {
  return app.gql(ME, {}, { token });
}

/** The tenant's log, oldest first, as stored. */
async function tenantLog(tenantId: string): Promise<EventRow[]> {
  return withPlatform(app.database.db, (trx) => trx.selectFrom("events").selectAll().where("tenant_id", "=", tenantId).orderBy("tenant_seq").execute());
}

const dataOf = (row: EventRow) => (typeof row.data === "string" ? JSON.parse(row.data) : row.data) as Record<string, any>;
const familyOf = (token: string) => decodeJwt(token).sid as string;

function expectNoSecretsIn(rows: EventRow[], secrets: string[]) {
  const stored = JSON.stringify(rows);
  for (const secret of secrets) {
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(secret.split(".")[2]);
  }
}

describe("issueServiceToken with refreshable: true", () => {
  it("returns an access token and a refresh token, and records the session without either", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const pair = await issue(tokens.admin, "ci-runner");
    expect(pair.refreshToken).toEqual(expect.any(String));
    expect(pair.refreshToken).not.toBe(pair.accessToken);
    expect(new Date(pair.refreshExpiresAt).getTime()).toBeGreaterThanOrEqual(new Date(pair.expiresAt).getTime());

    const res = await me(pair.accessToken);
    expect(res.errors).toBeUndefined();
    expect(res.data.me).toEqual({ subject: "ci-runner", tenantId, kind: "service", roles: ["service"], tokenId: pair.tokenId });

    const log = await tenantLog(tenantId);
    const started = log.filter((e) => e.event_type === "session.started");
    expect(started).toHaveLength(1);
    expect(dataOf(started[0]!)).toMatchObject({ familyId: familyOf(pair.accessToken), subject: "ci-runner", accessTokenId: pair.tokenId });
    expectNoSecretsIn(log, [pair.accessToken, pair.refreshToken]);
  });

  it("is refused to viewers, editors and services with FORBIDDEN, and nothing is issued", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const before = (await tenantLog(tenantId)).length;
    for (const role of ["viewer", "editor", "service"] as const) {
      const res = await app.gql(ISSUE, { input: { subject: `sneaky-${role}`, refreshable: true } }, { token: tokens[role] });
      expect(res.data?.issueServiceToken ?? null, role).toBeNull();
      expect(res.errors, role).toHaveLength(1);
      expect(res.errors![0]!.extensions?.code, role).toBe("FORBIDDEN");
      expect(JSON.stringify(res.errors)).not.toMatch(/eyJ/); // no token in the refusal
    }
    const appended = (await tenantLog(tenantId)).slice(before);
    // The refusals themselves are audited; no token, session or other change is.
    expect(appended.map((e) => [e.event_type, dataOf(e).reason, dataOf(e).action])).toEqual([
      ["access.denied", "forbidden", "token:issue"],
      ["access.denied", "forbidden", "token:issue"],
      ["access.denied", "forbidden", "token:issue"],
    ]);
    const sessions = await withPlatform(app.database.db, (trx) => trx.selectFrom("sessions").select("family_id").where("tenant_id", "=", tenantId).execute());
    expect(sessions).toEqual([]);
  });

  it("is refused to an anonymous caller", async () => {
    const res = await app.gql(ISSUE, { input: { subject: "anonymous-runner", refreshable: true } });
    expectUnauthenticated(res);
    expect(res.data?.issueServiceToken ?? null).toBeNull();
  });
});

describe("refreshSession", () => {
  it("rotates: a new refresh token and a new access token, while the previous access token lives on", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const first = await issue(tokens.admin);
    const second = await refreshOk(first.refreshToken);

    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(second.tokenId).not.toBe(first.tokenId);
    expect(familyOf(second.accessToken)).toBe(familyOf(first.accessToken));

    expect((await me(second.accessToken)).data?.me).toMatchObject({ subject: "ci-runner", tenantId, tokenId: second.tokenId });
    // The previous access token is valid until it expires.
    expect((await me(first.accessToken)).data?.me).toMatchObject({ tokenId: first.tokenId });
    // The new refresh token can be spent in turn.
    const third = await refreshOk(second.refreshToken);
    expect((await me(third.accessToken)).errors).toBeUndefined();

    const refreshed = (await tenantLog(tenantId)).filter((e) => e.event_type === "session.refreshed").map(dataOf);
    expect(refreshed).toHaveLength(2);
    expect(refreshed.map((d) => d.accessTokenId)).toEqual([second.tokenId, third.tokenId]);
    expectNoSecretsIn(await tenantLog(tenantId), [first.refreshToken, second.refreshToken, third.refreshToken, second.accessToken, third.accessToken]);
  });

  it("refuses a spent refresh token and revokes the whole family, recording a critical event", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const first = await issue(tokens.admin);
    const second = await refreshOk(first.refreshToken);
    const third = await refreshOk(second.refreshToken);
    const family = familyOf(first.accessToken);

    // The first refresh token was spent: presenting it again is reuse.
    const requestId = `reuse-${randomUUID()}`;
    const reuse = await refresh(first.refreshToken, { requestId });
    expectUnauthenticated(reuse);
    expect(reuse.data?.refreshSession ?? null).toBeNull();

    // The newest refresh token of the family is dead too...
    expectUnauthenticated(await refresh(third.refreshToken));
    // ...and so is every access token minted from it, on the next request.
    for (const pair of [first, second, third]) {
      const res = await me(pair.accessToken);
      expectUnauthenticated(res);
      expect(res.data?.me ?? null).toBeNull();
    }
    // Tokens outside the family are untouched.
    expect((await me(tokens.admin)).errors).toBeUndefined();

    const log = await tenantLog(tenantId);
    const revoked = log.filter((e) => e.event_type === "session.revoked");
    expect(revoked.map(dataOf)).toEqual([expect.objectContaining({ familyId: family, reason: "refresh-token-reuse" })]);
    const reuseAlarm = log.filter((e) => e.event_type === "auth.failed" && dataOf(e).reason === "refresh-token-reuse");
    expect(reuseAlarm).toHaveLength(1);
    expect(dataOf(reuseAlarm[0]!)).toMatchObject({ level: "critical", status: "failed", details: { familyId: family } });
    expect((reuseAlarm[0]!.metadata as Record<string, any>).requestId).toBe(requestId);
    // The refused access tokens are recorded as revoked, also critical.
    const refusedAccess = log.filter((e) => e.event_type === "auth.failed" && dataOf(e).reason === "revoked");
    expect(refusedAccess.length).toBeGreaterThanOrEqual(1);
    expect(dataOf(refusedAccess[0]!).level).toBe("critical");
    expectNoSecretsIn(
      log,
      [first, second, third].flatMap((p) => [p.accessToken, p.refreshToken]),
    );

    // The tenant's admin sees both in the audit log.
    const audit = await app.gql(
      `query($filter: AuditLogFilter) { auditLog(first: 50, filter: $filter) { edges { node { type data } } } }`,
      { filter: { types: ["session.revoked", "auth.failed"] } },
      { token: tokens.admin },
    );
    expect(audit.errors).toBeUndefined();
    const nodes = audit.data.auditLog.edges.map((e: any) => e.node);
    expect(nodes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "session.revoked", data: expect.objectContaining({ reason: "refresh-token-reuse", familyId: family }) }),
        expect.objectContaining({ type: "auth.failed", data: expect.objectContaining({ reason: "refresh-token-reuse", level: "critical" }) }),
      ]),
    );
  });

  it("lets at most one of two concurrent refreshes with the same refresh token succeed", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    for (let round = 0; round < 4; round++) {
      const pair = await issue(tokens.admin, `racer-${round}`);
      const results = await Promise.all([refresh(pair.refreshToken), refresh(pair.refreshToken)]);
      const succeeded = results.filter((r) => !r.errors && r.data?.refreshSession);
      for (const r of succeeded) remember(r.data.refreshSession);
      expect(succeeded.length, `round ${round}`).toBeLessThanOrEqual(1);
      for (const r of results.filter((r) => r.errors)) {
        expect(r.errors![0]!.extensions?.code, `round ${round}`).toBe("UNAUTHENTICATED");
      }
      // The family's stream holds at most one rotation.
      const family = familyOf(pair.accessToken);
      const rotations = (await tenantLog(tenantId)).filter((e) => e.stream_id === family && e.event_type === "session.refreshed");
      expect(rotations.length, `round ${round}`).toBeLessThanOrEqual(1);
    }
  });

  it("refuses a garbled refresh token with UNAUTHENTICATED", async () => {
    const res = await refresh("not-a-refresh-token-at-all");
    expectUnauthenticated(res);
  });
});

describe("refresh and access tokens are not interchangeable", () => {
  it("refuses a refresh token presented as an access token", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const pair = await issue(tokens.admin);
    const requestId = `swap-${randomUUID()}`;
    const res = await app.gql(ME, {}, { token: pair.refreshToken, headers: { "x-request-id": requestId } });
    expectUnauthenticated(res);
    expect(res.data?.me ?? null).toBeNull();
    const events = (await tenantLog(tenantId)).filter((e) => (e.metadata as Record<string, any>).requestId === requestId);
    expect(events.map((e) => [e.event_type, dataOf(e).reason])).toEqual([["auth.failed", "wrong-token-type"]]);
    expectNoSecretsIn(events, [pair.refreshToken]);
    // The refresh token itself is still good for what it is.
    await refreshOk(pair.refreshToken);
  });

  it("refuses an access token presented as a refresh token", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const pair = await issue(tokens.admin);
    const requestId = `swap-${randomUUID()}`;
    expectUnauthenticated(await refresh(pair.accessToken, { requestId }));
    const events = (await tenantLog(tenantId)).filter((e) => (e.metadata as Record<string, any>).requestId === requestId);
    expect(events.map((e) => [e.event_type, dataOf(e).reason])).toEqual([["auth.failed", "wrong-token-type"]]);
    expectNoSecretsIn(events, [pair.accessToken]);
    // Nothing was rotated: the real refresh token still works, once.
    await refreshOk(pair.refreshToken);
    expect((await tenantLog(tenantId)).filter((e) => e.event_type === "session.refreshed")).toHaveLength(1);
  });
});

describe("startSession and endSession (the console's sign-in and sign-out)", () => {
  const START = "mutation { startSession { accessToken tokenId expiresAt refreshToken refreshExpiresAt } }";
  const END = "mutation { endSession }";
  const WHO = "{ me { subject tenantId kind roles scopes permissions } }";

  async function start(token: string): Promise<Pair> {
    const res = await app.gql(START, {}, { token });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    return remember(res.data.startSession);
  }

  async function who(token: string): Promise<Record<string, unknown>> {
    const res = await app.gql(WHO, {}, { token });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    return res.data.me;
  }

  it("exchanges the token presented for a 15-minute session of the same principal, which refreshSession rotates", async () => {
    const { tenantId } = await app.seedTenant();
    // Like the bootstrap admin token: a user admin token that lives 7 days.
    const pasted = await app.mintToken({ tenantId, roles: ["admin"], kind: "user", subject: "bootstrap-admin", ttlSeconds: 7 * 86400 });
    const before = Date.now();
    const pair = await start(pasted);

    expect(await who(pair.accessToken)).toEqual(await who(pasted));
    const session = await app.gql("{ me { subject tenantId roles } }", {}, { token: pair.accessToken });
    expect(session.data.me).toEqual({ subject: "bootstrap-admin", tenantId, roles: ["admin"] });
    // A 15-minute access token, in a family of its own.
    const claims = decodeJwt(pair.accessToken);
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(Math.floor(new Date(pair.expiresAt).getTime() / 1000)).toBe(claims.exp);
    expect(new Date(pair.expiresAt).getTime() - before).toBeGreaterThan(880_000);
    expect(new Date(pair.expiresAt).getTime() - before).toBeLessThanOrEqual(905_000);
    expect(familyOf(pair.accessToken)).toEqual(expect.any(String));
    expect(new Date(pair.refreshExpiresAt).getTime()).toBeGreaterThan(new Date(pair.expiresAt).getTime());
    // The session ends when the token it came from does, at the latest.
    expect(Math.floor(new Date(pair.refreshExpiresAt).getTime() / 1000)).toBeLessThanOrEqual(decodeJwt(pasted).exp!);

    // The refresh token rotates like any other: a new pair of the same family and principal.
    const next = await refreshOk(pair.refreshToken);
    expect(familyOf(next.accessToken)).toBe(familyOf(pair.accessToken));
    expect(next.refreshToken).not.toBe(pair.refreshToken);
    expect(await who(next.accessToken)).toEqual(await who(pasted));
    // The token presented is not spent by the exchange.
    expect((await me(pasted)).errors).toBeUndefined();

    const log = await tenantLog(tenantId);
    const started = log.filter((e) => e.event_type === "session.started").map(dataOf);
    expect(started).toEqual([
      expect.objectContaining({
        familyId: familyOf(pair.accessToken),
        subject: "bootstrap-admin",
        kind: "user",
        roles: ["admin"],
        scopes: [],
        accessTokenId: pair.tokenId,
      }),
    ]);
    expectNoSecretsIn(log, [pasted, pair.accessToken, pair.refreshToken, next.accessToken, next.refreshToken]);
  });

  it("never outlives the token presented: a session of a 2-minute token ends with it, refreshes included", async () => {
    const { tenantId } = await app.seedTenant();
    const pasted = await app.mintToken({ tenantId, roles: ["viewer"], kind: "user", subject: "short-lived", ttlSeconds: 120 });
    const pair = await start(pasted);
    const ends = decodeJwt(pasted).exp!;
    expect(Math.floor(new Date(pair.refreshExpiresAt).getTime() / 1000)).toBeLessThanOrEqual(ends);
    expect(decodeJwt(pair.accessToken).exp!).toBeLessThanOrEqual(ends);
    const next = await refreshOk(pair.refreshToken);
    expect(decodeJwt(next.accessToken).exp!).toBeLessThanOrEqual(ends);
  });

  it("gives a viewer a viewer's session, and a narrowed token a session just as narrow", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const viewer = await start(tokens.viewer);
    expect(await who(viewer.accessToken)).toEqual(await who(tokens.viewer));
    expect((await who(viewer.accessToken)).roles).toEqual(["viewer"]);
    for (const token of [tokens.viewer, viewer.accessToken]) {
      const res = await app.gql(ISSUE, { input: { subject: "escalate", refreshable: true } }, { token });
      expect(res.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);
    }
    // Refreshing keeps the grant.
    const refreshed = await refreshOk(viewer.refreshToken);
    expect((await who(refreshed.accessToken)).roles).toEqual(["viewer"]);

    const narrow = await app.mintToken({ tenantId, roles: ["admin"], scopes: ["tenant:read"], subject: `narrow@${tenantId}` });
    const narrowSession = await start(narrow);
    expect(await who(narrowSession.accessToken)).toMatchObject({ roles: ["admin"], scopes: ["tenant:read"], permissions: ["tenant:read"] });
    const res = await app.gql(ISSUE, { input: { subject: "escalate" } }, { token: narrowSession.accessToken });
    expect(res.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);
  });

  it("endSession revokes the session's family and the access token presented: both tokens and every access token of the family are refused", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const first = await start(tokens.editor);
    const second = await refreshOk(first.refreshToken);
    const family = familyOf(first.accessToken);

    const ended = await app.gql(END, {}, { token: second.accessToken });
    expect(ended.errors).toBeUndefined();
    expect(ended.data.endSession).toBe(true);

    for (const pair of [first, second]) expectUnauthenticated(await me(pair.accessToken));
    expectUnauthenticated(await refresh(second.refreshToken));
    // A second sign-out with the same token is refused by authentication itself.
    const again = await app.gql(END, {}, { token: second.accessToken });
    expectUnauthenticated(again);
    expect(again.data?.endSession ?? null).toBeNull();
    // The token the session was started with is untouched.
    expect((await me(tokens.editor)).errors).toBeUndefined();

    const log = await tenantLog(tenantId);
    expect(log.filter((e) => e.event_type === "session.revoked").map(dataOf)).toEqual([expect.objectContaining({ familyId: family, reason: "revoked" })]);
    expect(log.filter((e) => e.event_type === "access_token.revoked").map(dataOf)).toEqual([expect.objectContaining({ tokenId: second.tokenId })]);
    expectNoSecretsIn(log, [first.accessToken, first.refreshToken, second.accessToken, second.refreshToken]);
  });

  it("endSession with a token that is not from a session revokes just that token", async () => {
    const { tenantId } = await app.seedTenant();
    const token = await app.mintToken({ tenantId, roles: ["viewer"], subject: `leaving@${tenantId}` });
    const tokenId = decodeJwt(token).jti;
    const ended = await app.gql(END, {}, { token });
    expect(ended.errors).toBeUndefined();
    expect(ended.data.endSession).toBe(true);
    expectUnauthenticated(await me(token));
    expectUnauthenticated(await app.gql(END, {}, { token }));

    const log = await tenantLog(tenantId);
    expect(log.filter((e) => e.event_type === "session.revoked")).toEqual([]);
    expect(log.filter((e) => e.event_type === "access_token.revoked").map(dataOf)).toEqual([expect.objectContaining({ tokenId })]);
  });

  it("ending one's own session leaves another tenant's session working", async () => {
    const ours = await app.seedTenant();
    const theirs = await app.seedTenant();
    const mine = await start(ours.tokens.admin);
    const other = await start(theirs.tokens.admin);

    expect((await app.gql(END, {}, { token: mine.accessToken })).data?.endSession).toBe(true);
    expectUnauthenticated(await me(mine.accessToken));

    expect((await who(other.accessToken)).tenantId).toBe(theirs.tenantId);
    const rotated = await refreshOk(other.refreshToken);
    expect((await who(rotated.accessToken)).tenantId).toBe(theirs.tenantId);
    const theirLog = await tenantLog(theirs.tenantId);
    expect(theirLog.filter((e) => e.event_type === "session.revoked" || e.event_type === "access_token.revoked")).toEqual([]);
  });

  it("refuses both to an unauthenticated caller", async () => {
    for (const query of [START, END]) {
      for (const token of [undefined, "not-a-token"]) {
        const res = await app.gql(query, {}, token ? { token } : {});
        expectUnauthenticated(res);
        expect(res.data?.startSession ?? res.data?.endSession ?? null).toBeNull();
      }
    }
  });
});

describe("redeemSignInCode (keyplane console link)", () => {
  const REDEEM = "mutation ($code: String!) { redeemSignInCode(code: $code) { accessToken tokenId expiresAt refreshToken refreshExpiresAt } }";
  const WHO = "{ me { subject tenantId kind roles scopes } }";

  /** A code as `keyplane console link` makes it: the same function, Keyplane's key. */
  async function link(input: Parameters<typeof mintSignInCode>[1], minter = app.kp.deps.minter) {
    const issued = await mintSignInCode({ ...app.kp.deps, minter }, input);
    registerSecret(issued.code);
    return issued;
  }

  function redeem(code: string, requestId?: string): Promise<GraphQLResponse> {
    return app.gql(REDEEM, { code }, requestId ? { headers: { "x-request-id": requestId } } : {});
  }

  async function redeemOk(code: string): Promise<Pair> {
    const res = await redeem(code);
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    return remember(res.data.redeemSignInCode);
  }

  function expectRefused(res: GraphQLResponse) {
    expectUnauthenticated(res);
    expect(res.errors![0]!.message).toBe("this sign-in link was already used or has expired");
    expect(res.data?.redeemSignInCode ?? null).toBeNull();
  }

  const refusalsOf = async (tenantId: string, requestId: string) =>
    (await tenantLog(tenantId))
      .filter((e) => (e.metadata as Record<string, any>).requestId === requestId)
      .map((e) => [e.event_type, dataOf(e).reason, dataOf(e).action]);

  it("is a short-lived JWT of its own type, in the fragment of a console URL", async () => {
    const { tenantId } = await app.seedTenant();
    const before = clock.now().getTime();
    const issued = await link({ tenantId });
    expect(issued.link).toBe(`${app.kp.deps.config.publicUrl}/console/#code=${issued.code}`);
    expect(decodeProtectedHeader(issued.code)).toMatchObject({ alg: "ES256", typ: "kp-sign-in+jwt" });
    const claims = decodeJwt(issued.code);
    expect(claims).toMatchObject({ sub: "console-link", tenant_id: tenantId, roles: ["admin"], kind: "user", jti: issued.codeId });
    // exp is in whole seconds, counted from the moment of minting (a little after `before`).
    const after = clock.now().getTime();
    expect(claims.exp! * 1000).toBeGreaterThan(before + 299_000);
    expect(claims.exp! * 1000).toBeLessThanOrEqual(after + 300_000);
    await expect(link({ tenantId, ttlSeconds: 901 })).rejects.toThrow(/at most 900 seconds/);
    await expect(link({ tenantId, roles: ["platform"] })).rejects.toThrow(/platform role/);
  });

  it("redeems once into a 15-minute session of the code's tenant, subject and roles; the second redemption is refused and starts nothing", async () => {
    const { tenantId } = await app.seedTenant();
    const issued = await link({ tenantId, subject: "alice@example.com", roles: ["editor", "viewer"] });
    const pair = await redeemOk(issued.code);

    const who = await app.gql(WHO, {}, { token: pair.accessToken });
    expect(who.errors).toBeUndefined();
    expect(who.data.me).toEqual({ subject: "alice@example.com", tenantId, kind: "user", roles: ["editor", "viewer"], scopes: [] });
    const claims = decodeJwt(pair.accessToken);
    expect(claims.exp! - claims.iat!).toBe(900);
    // The session is the code's: its family id is the code's id.
    expect(familyOf(pair.accessToken)).toBe(issued.codeId);
    // The family ends within 12 hours, and the refresh token rotates like any other.
    expect(new Date(pair.refreshExpiresAt).getTime() - clock.now().getTime()).toBeLessThanOrEqual(12 * 3600_000);
    const next = await refreshOk(pair.refreshToken);
    expect(familyOf(next.accessToken)).toBe(issued.codeId);

    const logBefore = await tenantLog(tenantId);
    const requestId = `again-${randomUUID()}`;
    expectRefused(await redeem(issued.code, requestId));
    const logAfter = await tenantLog(tenantId);
    // Nothing new but the refusal itself.
    expect(logAfter.slice(logBefore.length).map((e) => [e.event_type, dataOf(e).reason])).toEqual([["auth.failed", "sign-in-code-reuse"]]);
    expect(await refusalsOf(tenantId, requestId)).toEqual([["auth.failed", "sign-in-code-reuse", "redeem-sign-in-code"]]);
    expect(logAfter.filter((e) => e.event_type === "session.started").map(dataOf)).toEqual([
      expect.objectContaining({ familyId: issued.codeId, subject: "alice@example.com", roles: ["editor", "viewer"], accessTokenId: pair.tokenId }),
    ]);
    // The session of the first redemption is untouched.
    expect((await me(next.accessToken)).errors).toBeUndefined();
    expectNoSecretsIn(logAfter, [issued.code, pair.accessToken, pair.refreshToken, next.accessToken, next.refreshToken]);
  });

  it("lets at most one of two concurrent redemptions of a code succeed", async () => {
    const { tenantId } = await app.seedTenant();
    const issued = await link({ tenantId });
    const results = await Promise.all([redeem(issued.code), redeem(issued.code)]);
    for (const r of results) if (r.data?.redeemSignInCode) remember(r.data.redeemSignInCode);
    expect(results.filter((r) => r.errors === undefined)).toHaveLength(1);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === "UNAUTHENTICATED")).toHaveLength(1);
    expect((await tenantLog(tenantId)).filter((e) => e.event_type === "session.started")).toHaveLength(1);
  });

  it("refuses the code presented as a Bearer token, and as a refresh token; it still redeems afterwards", async () => {
    const { tenantId } = await app.seedTenant();
    const issued = await link({ tenantId });
    const requestId = `bearer-${randomUUID()}`;
    const res = await app.gql(ME, {}, { token: issued.code, headers: { "x-request-id": requestId } });
    expectUnauthenticated(res);
    expect(res.data?.me ?? null).toBeNull();
    expect((await refusalsOf(tenantId, requestId)).map(([type, reason]) => [type, reason])).toEqual([["auth.failed", "wrong-token-type"]]);
    expectUnauthenticated(await refresh(issued.code));
    await redeemOk(issued.code);
  });

  it("refuses a code signed by another key, an access or refresh token, and garbage, all alike, and records why", async () => {
    const { tenantId, tokens } = await app.seedTenant();
    const pem = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const otherKeys = await loadSigningKeys({ pem, dataDir: mkdtempSync(path.join(tmpdir(), "keyplane-other-key-")), allowGenerate: false });
    const config = app.kp.deps.config;
    const forged = await link({ tenantId }, createTokenMinter(otherKeys, config.auth.issuer, config.auth.audience));
    const pair = await issue(tokens.admin);
    // A signature Keyplane cannot verify names no tenant it could trust: that refusal goes to the platform log.
    for (const [code, reason, log] of [
      [forged.code, "unknown-key", "_platform"],
      [tokens.admin, "wrong-token-type", tenantId],
    ] as const) {
      const requestId = `refused-${randomUUID()}`;
      expectRefused(await redeem(code, requestId));
      expect(await refusalsOf(log, requestId)).toEqual([["auth.failed", reason, "redeem-sign-in-code"]]);
    }
    // Refused alike (and recorded, folded into the one above within the minute).
    expectRefused(await redeem(pair.refreshToken));
    expectRefused(await redeem("not-a-code"));
    expect((await tenantLog(tenantId)).filter((e) => e.event_type === "session.started")).toHaveLength(1); // the service token's
  });

  it("gives another tenant's code a session of that tenant only", async () => {
    const ours = await app.seedTenant();
    const theirs = await app.seedTenant();
    const pair = await redeemOk((await link({ tenantId: theirs.tenantId })).code);
    const who = await app.gql(WHO, {}, { token: pair.accessToken });
    expect(who.data.me.tenantId).toBe(theirs.tenantId);
    const cross = await app.gql("query ($id: ID) { tenant(id: $id) { id } }", { id: ours.tenantId }, { token: pair.accessToken });
    expect(cross.errors?.map((e) => e.extensions?.code)).toEqual(["NOT_FOUND"]);
    expect((await tenantLog(ours.tenantId)).filter((e) => e.event_type === "session.started")).toEqual([]);
    expect((await tenantLog(theirs.tenantId)).filter((e) => e.event_type === "session.started")).toHaveLength(1);
  });

  it("refuses a code of a tenant that does not exist, recorded in the platform log", async () => {
    const issued = await link({ tenantId: `gone-${randomUUID().slice(0, 8)}` });
    const requestId = `unknown-${randomUUID()}`;
    expectRefused(await redeem(issued.code, requestId));
    expect(await refusalsOf("_platform", requestId)).toEqual([["auth.failed", "unknown-tenant", "redeem-sign-in-code"]]);
  });

  // Last: it moves the suite's clock.
  it("refuses an expired code, with the same answer", async () => {
    const { tenantId } = await app.seedTenant();
    const issued = await link({ tenantId, ttlSeconds: 60 });
    clock.advance(60_000 + 6_000); // past its expiry and the 5 seconds of clock tolerance
    const requestId = `expired-${randomUUID()}`;
    expectRefused(await redeem(issued.code, requestId));
    expect(await refusalsOf(tenantId, requestId)).toEqual([["auth.failed", "expired", "redeem-sign-in-code"]]);
    expect((await tenantLog(tenantId)).filter((e) => e.event_type === "session.started")).toEqual([]);
  });
});
