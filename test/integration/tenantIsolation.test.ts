import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Two tenants on one Keyplane: nothing B's tokens can ask shows or changes anything of A.

const AUDIT_PAGE = `
  query ($first: Int!, $after: String, $filter: AuditLogFilter, $order: AuditOrder) {
    auditLog(first: $first, after: $after, filter: $filter, order: $order) {
      edges { cursor node { eventId type streamId actor data } }
      pageInfo { hasNextPage endCursor }
    }
  }`;

interface AuditNode {
  eventId: string;
  type: string;
  streamId: string;
  actor: string;
  data: Record<string, unknown>;
}

/** Every event a token can read, all pages. */
async function readWholeLog(app: TestApp, token: string, filter?: Record<string, unknown>): Promise<AuditNode[]> {
  const nodes: AuditNode[] = [];
  let after: string | null = null;
  for (;;) {
    const res: GraphQLResponse = await app.gql(AUDIT_PAGE, { first: 100, after, filter }, { token });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    const page: { edges: Array<{ node: AuditNode }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } = res.data.auditLog;
    nodes.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage) return nodes;
    after = page.pageInfo.endCursor;
  }
}

describe("tenant isolation", () => {
  let app: TestApp;
  let a: SeededTenant;
  let b: SeededTenant;
  /** B's tokens that may read B's audit log. */
  let bReaders: Record<string, string>;
  /** Everything about A that a filter could name. */
  let aEvents: AuditNode[];
  let aIssuedTokenId: string;
  const aAdminSubject = () => `admin@${a.tenantId}`;

  beforeAll(async () => {
    app = await createTestApp({ name: "tenant-isolation" });
    a = await app.seedTenant();
    b = await app.seedTenant();
    bReaders = {
      admin: b.tokens.admin,
      auditor: await app.mintToken({ tenantId: b.tenantId, roles: ["viewer"], scopes: ["audit:read"], subject: `auditor@${b.tenantId}` }),
    };
    // A's admin acts, so A's log holds events of A's own actors, streams and types.
    const issued = await app.gql('mutation { issueServiceToken(input: { subject: "a-ci" }) { tokenId accessToken } }', {}, { token: a.tokens.admin });
    expect(issued.errors).toBeUndefined();
    registerSecret(issued.data.issueServiceToken.accessToken);
    aIssuedTokenId = issued.data.issueServiceToken.tokenId;
    aEvents = await readWholeLog(app, a.tokens.admin);
    // The fixture is what the filters below rely on.
    expect(aEvents.map((e) => e.type)).toEqual(expect.arrayContaining(["tenant.created", "access_token.issued"]));
    expect(aEvents.some((e) => e.actor === aAdminSubject())).toBe(true);
    expect(aEvents.some((e) => e.streamId === a.tenantId)).toBe(true);
    expect(aEvents.some((e) => e.streamId === aIssuedTokenId)).toBe(true);
  });
  afterAll(() => app?.close());

  describe("B's tokens never see A's events in auditLog", () => {
    const filters = (): Array<[string, Record<string, unknown> | undefined]> => [
      ["no filter", undefined],
      ["types of A's events", { types: [...new Set(aEvents.map((e) => e.type))] }],
      ["streamId of A's tenant stream", { streamId: a.tenantId }],
      ["streamId of a token A issued", { streamId: aIssuedTokenId }],
      ["actor of A", { actor: aAdminSubject() }],
      ["actor of A with A's types", { actor: aAdminSubject(), types: ["tenant.created", "access_token.issued"] }],
    ];

    it("whatever the filter, for every reading token of B", async () => {
      const aIds = new Set(aEvents.map((e) => e.eventId));
      for (const [who, token] of Object.entries(bReaders)) {
        for (const [label, filter] of filters()) {
          const seen = await readWholeLog(app, token, filter);
          const leaked = seen.filter((e) => aIds.has(e.eventId) || e.streamId === a.tenantId || e.streamId === aIssuedTokenId || e.actor === aAdminSubject());
          expect(leaked, `${who} of B, ${label}`).toEqual([]);
          // Filters that only A's events match find nothing at all.
          if (label.startsWith("streamId") || label.startsWith("actor")) expect(seen, `${who} of B, ${label}`).toEqual([]);
        }
      }
    });

    it("newest first, and with a cursor taken from A's log", async () => {
      const aPage = await app.gql(AUDIT_PAGE, { first: 1 }, { token: a.tokens.admin });
      const aCursor = aPage.data.auditLog.pageInfo.endCursor;
      expect(aCursor).toBeTruthy();
      const aIds = new Set(aEvents.map((e) => e.eventId));
      for (const variables of [
        { first: 100, order: "NEWEST_FIRST" },
        { first: 100, after: aCursor },
      ]) {
        const res = await app.gql(AUDIT_PAGE, variables, { token: b.tokens.admin });
        expect(res.errors).toBeUndefined();
        const ids: string[] = res.data.auditLog.edges.map((e: { node: AuditNode }) => e.node.eventId);
        expect(ids.filter((id) => aIds.has(id))).toEqual([]);
      }
    });

    it("B's tokens without audit:read are refused, not shown an empty or foreign log", async () => {
      for (const role of ["viewer", "editor", "service"] as const) {
        const res = await app.gql(AUDIT_PAGE, { first: 10 }, { token: b.tokens[role] });
        expect(res.errors?.[0]?.extensions?.code, role).toBe("FORBIDDEN");
        expect(res.data?.auditLog ?? null).toBeNull();
      }
    });
  });

  describe("tenant", () => {
    it("answers B's own tenant to every B token, with or without its id", async () => {
      for (const role of ["admin", "editor", "viewer", "service"] as const) {
        const res = await app.gql("query ($id: ID) { tenant(id: $id) { id name } }", {}, { token: b.tokens[role] });
        expect(res.errors, role).toBeUndefined();
        expect(res.data.tenant.id, role).toBe(b.tenantId);
        const named = await app.gql("query ($id: ID) { tenant(id: $id) { id } }", { id: b.tenantId }, { token: b.tokens[role] });
        expect(named.errors, role).toBeUndefined();
        expect(named.data.tenant.id, role).toBe(b.tenantId);
      }
    });

    it("tenant(id: A) with B's token answers NOT_FOUND, like a tenant that does not exist, and is recorded in B's log", async () => {
      const crossTenant = await app.gql("query ($id: ID) { tenant(id: $id) { id name } }", { id: a.tenantId }, { token: b.tokens.editor });
      expect(crossTenant.errors?.map((e) => e.extensions?.code)).toEqual(["NOT_FOUND"]);
      expect(crossTenant.data?.tenant ?? null).toBeNull();
      expect(JSON.stringify(crossTenant)).not.toContain(`Tenant ${a.tenantId}`); // A's name

      const missing = await app.gql("query ($id: ID) { tenant(id: $id) { id name } }", { id: "no-such-tenant" }, { token: b.tokens.viewer });
      expect(missing.errors?.map((e) => e.extensions?.code)).toEqual(["NOT_FOUND"]);
      expect(missing.errors?.[0]?.message).toBe(crossTenant.errors?.[0]?.message);

      const denied = (await readWholeLog(app, b.tokens.admin, { types: ["access.denied"] })).filter(
        (e) => e.data.reason === "cross-tenant" && e.actor === `editor@${b.tenantId}`,
      );
      expect(denied).toHaveLength(1);
      expect(denied[0]!.data).toMatchObject({ reason: "cross-tenant", status: "denied", details: { requested: a.tenantId } });

      // A's log is not where B's attempt is recorded.
      const inA = await readWholeLog(app, a.tokens.admin, { types: ["access.denied"] });
      expect(inA.filter((e) => e.actor.endsWith(`@${b.tenantId}`))).toEqual([]);
    });
  });

  describe("revocation is per tenant", () => {
    it("B's admin revoking the tokenId of A's token does not stop A's token; A's admin revoking it does", async () => {
      const aToken = await app.mintToken({ tenantId: a.tenantId, roles: ["viewer"], subject: `victim@${a.tenantId}` });
      const me = await app.gql("{ me { tokenId tenantId } }", {}, { token: aToken });
      expect(me.errors).toBeUndefined();
      const tokenId: string = me.data.me.tokenId;

      const byB = await app.gql("mutation ($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId } }", { id: tokenId }, { token: b.tokens.admin });
      // Whatever B is told, A's token keeps working.
      if (byB.errors) expect(["NOT_FOUND", "FORBIDDEN"]).toContain(byB.errors[0]?.extensions?.code);
      const after = await app.gql("{ me { tokenId } tenant { id } }", {}, { token: aToken });
      expect(after.errors, JSON.stringify(after.errors)).toBeUndefined();
      expect(after.data).toEqual({ me: { tokenId }, tenant: { id: a.tenantId } });

      // The same mutation in A's own tenant does revoke it: the check above is not vacuous.
      const byA = await app.gql("mutation ($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId } }", { id: tokenId }, { token: a.tokens.admin });
      expect(byA.errors).toBeUndefined();
      const refused = await app.gql("{ me { tokenId } }", {}, { token: aToken });
      expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    });
  });
});
