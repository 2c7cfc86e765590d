import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { sql, type Selectable } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLATFORM_TENANT } from "../../src/auth/actor.ts";
import { pruneInstallationState } from "../../src/app/installations/pruneInstallationState.ts";
import { handleGitHubWebhook, WEBHOOK_PAYLOAD_MEMORY_SECONDS } from "../../src/app/installations/githubWebhook.ts";
import { withPlatform } from "../../src/store/db.ts";
import type { EventsTable } from "../../src/store/schema.ts";
import type { GitHubPermissions } from "../fakes/github.ts";
import { browseInstall, startProviderWorld, type ProviderWorld } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { seedInstallation } from "../testkit/fixtures.ts";

// GitHub tells Keyplane what happens to an installation through signed webhooks. What a tenant sees
// of them: the installation's fields (status, suspension, permissions, repositories, revocation) and
// one audit event per delivery, naming the delivery. What nobody else sees: anything at all. What
// a forger or a flood gets: a refusal, and nothing stored but a security event in the platform log.

const INSTALLATION = `
  query ($id: ID!) {
    installation(id: $id) {
      id externalId status suspendedByProvider suspendedByTenant permissions repositories repositorySelection revokedAt
      account { login }
    }
  }`;
const INSTALLATIONS = `query { installations(first: 10) { nodes { id externalId } } }`;
const AUDIT_PAGE = `
  query ($first: Int!, $after: String, $filter: AuditLogFilter) {
    auditLog(first: $first, after: $after, filter: $filter) {
      edges { node { eventId type data metadata } }
      pageInfo { hasNextPage endCursor }
    }
  }`;

const LIMIT = 25 * 1024 * 1024; // WEBHOOK_MAX_BODY_BYTES' default
const PERMISSIONS: GitHubPermissions = { contents: "read", metadata: "read", pull_requests: "write" };

interface AuditNode {
  eventId: string;
  type: string;
  data: Record<string, any>;
  metadata: Record<string, any>;
}
type EventRow = Selectable<EventsTable>;

let world: ProviderWorld;
let app: TestApp;
let hookUrl: string;

beforeAll(async () => {
  world = await startProviderWorld();
  app = await createTestApp({ env: world.env, name: "github-webhooks" });
  hookUrl = `${app.url}/webhooks/github`;
});
afterAll(async () => {
  await app?.close();
  await world?.close();
});

// ---- helpers ----

const uniqueLogin = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

interface Claimed {
  /** Keyplane's installation id. */
  id: string;
  /** GitHub's installation id. */
  githubId: number;
  login: string;
}

/** The tenant's editor installs the app on a new GitHub organization through the browser flow. */
async function installThroughBrowser(tenant: SeededTenant, login = uniqueLogin("org"), repositories = ["api", "web"]): Promise<Claimed> {
  world.github.setNextInstall({ account: { login, type: "Organization" }, repositories, permissions: PERMISSIONS });
  const installed = await seedInstallation(app, tenant.tokens.editor, "github");
  expect(installed.login).toBe(login);
  return { id: installed.id, githubId: Number(installed.externalId), login };
}

async function deliver(event: string, payload: unknown, options: { deliveryId?: string; secret?: string; signature?: string | null } = {}) {
  const response = await world.github.deliverWebhook(hookUrl, { event, payload, ...options });
  let body: any = response.body;
  try {
    body = JSON.parse(response.body);
  } catch {
    // not JSON: the assertion on it will say so
  }
  return { status: response.status, body, deliveryId: response.deliveryId };
}

async function installation(id: string, token: string) {
  const res = await app.gql(INSTALLATION, { id }, { token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data.installation as {
    id: string;
    externalId: string;
    status: string;
    suspendedByProvider: boolean;
    suspendedByTenant: boolean;
    permissions: Record<string, string>;
    repositories: string[] | null;
    repositorySelection: string | null;
    revokedAt: string | null;
    account: { login: string };
  };
}

/** The tenant's whole audit log (optionally of some types), oldest first. */
async function auditLog(token: string, types?: string[]): Promise<AuditNode[]> {
  const nodes: AuditNode[] = [];
  let after: string | null = null;
  for (;;) {
    const res: GraphQLResponse = await app.gql(AUDIT_PAGE, { first: 100, after, filter: types ? { types } : undefined }, { token });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    const page: { edges: Array<{ node: AuditNode }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } = res.data.auditLog;
    nodes.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage) return nodes;
    after = page.pageInfo.endCursor;
  }
}

const byDelivery = (log: AuditNode[], deliveryId: string) => log.filter((e) => e.metadata.deliveryId === deliveryId);

const sign = (body: string | Buffer, secret = world.githubApp.webhookSecret) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

/**
 * A POST to the webhook endpoint with exactly these headers, over node:http so that a response the
 * server sends before reading the whole body (413) is seen even if it then closes the connection.
 * `status` is undefined when the connection died before any response arrived.
 */
function post(
  body: string | Buffer,
  headers: Record<string, string>,
  options: { chunked?: boolean } = {},
): Promise<{ status?: number; body?: any; error?: string }> {
  const payload = typeof body === "string" ? Buffer.from(body) : body;
  return new Promise((resolve) => {
    let settled = false;
    const done = (result: { status?: number; body?: any; error?: string }) => {
      if (!settled) {
        settled = true;
        resolve(result);
      }
    };
    const req = httpRequest(hookUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/test",
        ...headers,
        ...(options.chunked ? {} : { "content-length": String(payload.length) }),
      },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      const finish = () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: any = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // kept as text
        }
        done({ status: res.statusCode, body: parsed });
      };
      res.on("end", finish);
      res.on("error", finish);
      res.on("aborted", finish);
    });
    req.on("error", (error) => done({ error: (error as NodeJS.ErrnoException).code ?? error.message }));
    if (options.chunked) {
      // Several writes without a Content-Length: Transfer-Encoding chunked.
      const step = 1024 * 1024;
      for (let at = 0; at < payload.length; at += step) req.write(payload.subarray(at, at + step));
      req.end();
    } else {
      req.end(payload);
    }
  });
}

const githubHeaders = (event: string, deliveryId: string | undefined, signature: string | undefined, requestId = `wh-${randomUUID()}`) => ({
  "x-github-event": event,
  ...(deliveryId ? { "x-github-delivery": deliveryId } : {}),
  ...(signature ? { "x-hub-signature-256": signature } : {}),
  "x-request-id": requestId,
});

async function deliveryRows(deliveryId: string) {
  return withPlatform(app.database.db, (trx) =>
    trx.selectFrom("webhook_deliveries").selectAll().where("provider", "=", "github").where("delivery_id", "=", deliveryId).execute(),
  );
}

async function unclaimedRow(githubId: number) {
  return withPlatform(app.database.db, (trx) =>
    trx.selectFrom("github_unclaimed_installations").selectAll().where("external_id", "=", String(githubId)).executeTakeFirst(),
  );
}

/** Events (any tenant) recorded for this request id. */
async function eventsOfRequest(requestId: string): Promise<EventRow[]> {
  return withPlatform(app.database.db, (trx) =>
    trx.selectFrom("events").selectAll().where(sql<string>`metadata->>'requestId'`, "=", requestId).orderBy("tenant_id").orderBy("tenant_seq").execute(),
  );
}
const json = (value: unknown): Record<string, any> => (typeof value === "string" ? JSON.parse(value) : value) as Record<string, any>;

// ---- tests ----

describe("webhooks for an installation a tenant claimed", () => {
  let tenant: SeededTenant;
  let claimed: Claimed;
  beforeAll(async () => {
    tenant = await app.seedTenant();
    claimed = await installThroughBrowser(tenant);
  });

  it("starts active, without the repository list the callback cannot know", async () => {
    const view = await installation(claimed.id, tenant.tokens.viewer);
    expect(view).toMatchObject({
      externalId: String(claimed.githubId),
      status: "active",
      suspendedByProvider: false,
      suspendedByTenant: false,
      permissions: PERMISSIONS,
      revokedAt: null,
    });
    expect(view.repositories ?? []).toEqual([]);
  });

  it("installation.created after the callback brings the repository list", async () => {
    const hook = await deliver("installation", world.github.installationEvent(claimed.githubId, "created"));
    expect(hook).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    expect((await installation(claimed.id, tenant.tokens.viewer)).repositories).toEqual([`${claimed.login}/api`, `${claimed.login}/web`]);
    const [event] = byDelivery(await auditLog(tenant.tokens.admin), hook.deliveryId);
    expect(event).toMatchObject({ type: "installation.repositories_changed", data: { added: [`${claimed.login}/api`, `${claimed.login}/web`], removed: [] } });
  });

  it("suspend: suspended by the provider, recorded with the delivery id and by provider", async () => {
    const hook = await deliver("installation", world.github.installationEvent(claimed.githubId, "suspend"));
    expect(hook).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({
      status: "suspended",
      suspendedByProvider: true,
      suspendedByTenant: false,
      revokedAt: null,
    });
    const events = byDelivery(await auditLog(tenant.tokens.admin), hook.deliveryId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: "installation.suspended",
      data: { installationId: claimed.id, by: "provider" },
      metadata: { deliveryId: hook.deliveryId, actor: { subject: "github-webhook", kind: "platform" } },
    });
  });

  it("while suspended at GitHub, the tenant can neither get credentials nor lift the suspension itself", async () => {
    const creds = await app.gql(`query ($id: ID!) { installationCredentials(id: $id) { accessToken } }`, { id: claimed.id }, { token: tenant.tokens.service });
    expect(creds.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    const resume = await app.gql(`mutation ($id: ID!) { resumeInstallation(id: $id) { status } }`, { id: claimed.id }, { token: tenant.tokens.admin });
    expect(resume.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect((await installation(claimed.id, tenant.tokens.viewer)).status).toBe("suspended");
  });

  it("unsuspend: active again", async () => {
    const hook = await deliver("installation", world.github.installationEvent(claimed.githubId, "unsuspend"));
    expect(hook.status).toBe(200);
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active", suspendedByProvider: false });
    expect(byDelivery(await auditLog(tenant.tokens.admin), hook.deliveryId)).toEqual([
      expect.objectContaining({
        type: "installation.resumed",
        data: expect.objectContaining({ by: "provider" }),
        metadata: expect.objectContaining({ deliveryId: hook.deliveryId }),
      }),
    ]);
  });

  it("new_permissions_accepted: the permissions shown are GitHub's new ones", async () => {
    const permissions: GitHubPermissions = { contents: "write", metadata: "read", pull_requests: "write", issues: "read" };
    const hook = await deliver("installation", world.github.installationEvent(claimed.githubId, "new_permissions_accepted", { permissions }));
    expect(hook.status).toBe(200);
    expect((await installation(claimed.id, tenant.tokens.viewer)).permissions).toEqual(permissions);
    expect(byDelivery(await auditLog(tenant.tokens.admin), hook.deliveryId)).toEqual([
      expect.objectContaining({ type: "installation.permissions_updated", data: expect.objectContaining({ permissions }) }),
    ]);
  });

  it("installation_repositories added and removed: the list follows, as owner/name", async () => {
    const added = await deliver("installation_repositories", world.github.installationRepositoriesEvent(claimed.githubId, { added: ["docs", "infra"] }));
    expect(added.status).toBe(200);
    expect((await installation(claimed.id, tenant.tokens.viewer)).repositories).toEqual([
      `${claimed.login}/api`,
      `${claimed.login}/docs`,
      `${claimed.login}/infra`,
      `${claimed.login}/web`,
    ]);

    const removed = await deliver("installation_repositories", world.github.installationRepositoriesEvent(claimed.githubId, { removed: ["api", "infra"] }));
    expect(removed.status).toBe(200);
    const view = await installation(claimed.id, tenant.tokens.viewer);
    expect(view.repositories).toEqual([`${claimed.login}/docs`, `${claimed.login}/web`]);
    expect(view.repositorySelection).toBe("selected");

    const log = await auditLog(tenant.tokens.admin);
    expect(byDelivery(log, added.deliveryId)).toEqual([
      expect.objectContaining({
        type: "installation.repositories_changed",
        data: expect.objectContaining({ added: [`${claimed.login}/docs`, `${claimed.login}/infra`], removed: [] }),
      }),
    ]);
    expect(byDelivery(log, removed.deliveryId)).toEqual([
      expect.objectContaining({
        type: "installation.repositories_changed",
        data: expect.objectContaining({ added: [], removed: [`${claimed.login}/api`, `${claimed.login}/infra`] }),
      }),
    ]);
  });

  it("deleted: revoked, with the time, and recorded as by the provider", async () => {
    const hook = await deliver("installation", world.github.installationEvent(claimed.githubId, "deleted"));
    expect(hook).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    const view = await installation(claimed.id, tenant.tokens.viewer);
    expect(view.status).toBe("revoked");
    expect(view.revokedAt).toEqual(expect.any(String));
    expect(Number.isNaN(Date.parse(view.revokedAt!))).toBe(false);
    expect(byDelivery(await auditLog(tenant.tokens.admin), hook.deliveryId)).toEqual([
      expect.objectContaining({ type: "installation.revoked", data: expect.objectContaining({ by: "provider", providerRevoked: true }) }),
    ]);
  });

  it("every installation event of this suite came from a delivery and names its sender", async () => {
    const log = await auditLog(tenant.tokens.admin, [
      "installation.suspended",
      "installation.resumed",
      "installation.permissions_updated",
      "installation.repositories_changed",
      "installation.revoked",
    ]);
    expect(log.length).toBe(7);
    for (const event of log) {
      expect(event.metadata.deliveryId, event.type).toMatch(/^[0-9a-f-]{36}$/);
      expect(event.metadata.sender, event.type).toBe(`${claimed.login}-admin`);
    }
  });
});

describe("webhooks that arrive before the install callback", () => {
  it("are invisible to every tenant until one claims the installation; the claim takes the repositories over", async () => {
    const tenant = await app.seedTenant();
    const login = uniqueLogin("early");
    const gh = world.github.addInstallation({
      appId: world.githubApp.appId,
      account: { login, type: "Organization" },
      repositories: ["alpha", "beta"],
      permissions: PERMISSIONS,
    });
    const created = await deliver("installation", world.github.installationEvent(gh.id, "created"));
    expect(created).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    const more = await deliver("installation_repositories", world.github.installationRepositoriesEvent(gh.id, { added: ["gamma"] }));
    expect(more.status).toBe(200);

    // Nothing in the tenant: no installation, no event.
    const before = await app.gql(INSTALLATIONS, {}, { token: tenant.tokens.admin });
    expect(before.data.installations.nodes).toEqual([]);
    expect((await auditLog(tenant.tokens.admin)).filter((e) => e.type.startsWith("installation."))).toEqual([]);
    for (const id of [created.deliveryId, more.deliveryId]) expect((await deliveryRows(id)).map((r) => r.tenant_id)).toEqual([null]);

    // The tenant installs the same installation (GitHub sees an existing one: setup_action=update).
    world.github.setNextInstall({ account: { login, type: "Organization" }, repositories: ["alpha", "beta", "gamma"], permissions: PERMISSIONS });
    const result = await browseInstall(app, "github", tenant.tokens.editor);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.visited.some((u) => u.includes("setup_action=update"))).toBe(true);
    expect(result.body).toMatchObject({ outcome: "created", installation: { externalId: String(gh.id), status: "active" } });

    const view = await installation(result.body.installation.id, tenant.tokens.viewer);
    expect(view).toMatchObject({ status: "active", suspendedByProvider: false, permissions: PERMISSIONS });
    expect(view.repositories).toEqual([`${login}/alpha`, `${login}/beta`, `${login}/gamma`]);
    const [createdEvent] = await auditLog(tenant.tokens.admin, ["installation.created"]);
    expect(createdEvent?.data).toMatchObject({ externalId: String(gh.id), repositories: [`${login}/alpha`, `${login}/beta`, `${login}/gamma`] });
    expect(await unclaimedRow(gh.id)).toBeUndefined();

    // From now on the webhooks land in the tenant.
    const removed = await deliver("installation_repositories", world.github.installationRepositoriesEvent(gh.id, { removed: ["beta"] }));
    expect(removed.status).toBe(200);
    expect((await installation(view.id, tenant.tokens.viewer)).repositories).toEqual([`${login}/alpha`, `${login}/gamma`]);
    expect(byDelivery(await auditLog(tenant.tokens.admin), removed.deliveryId)).toHaveLength(1);
  });

  it("an installation suspended before it was claimed starts suspended by the provider", async () => {
    const tenant = await app.seedTenant();
    const login = uniqueLogin("early-suspended");
    const gh = world.github.addInstallation({
      appId: world.githubApp.appId,
      account: { login, type: "Organization" },
      repositories: ["one"],
      permissions: PERMISSIONS,
    });
    expect((await deliver("installation", world.github.installationEvent(gh.id, "created"))).status).toBe(200);
    expect((await deliver("installation", world.github.installationEvent(gh.id, "suspend"))).status).toBe(200);
    expect(await unclaimedRow(gh.id)).toMatchObject({ suspended: true });
    expect((await app.gql(INSTALLATIONS, {}, { token: tenant.tokens.admin })).data.installations.nodes).toEqual([]);

    world.github.setNextInstall({ account: { login, type: "Organization" }, repositories: ["one"], permissions: PERMISSIONS });
    const result = await browseInstall(app, "github", tenant.tokens.editor);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    const view = await installation(result.body.installation.id, tenant.tokens.viewer);
    expect(view).toMatchObject({ status: "suspended", suspendedByProvider: true, suspendedByTenant: false, repositories: [`${login}/one`] });
    expect(await auditLog(tenant.tokens.admin, ["installation.suspended"])).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ by: "provider" }) }),
    ]);

    // GitHub lifting the suspension lifts it here.
    expect((await deliver("installation", world.github.installationEvent(gh.id, "unsuspend"))).status).toBe(200);
    expect(await installation(view.id, tenant.tokens.viewer)).toMatchObject({ status: "active", suspendedByProvider: false });
  });

  it("an installation deleted before it was claimed leaves nothing to claim", async () => {
    const login = uniqueLogin("early-deleted");
    const gh = world.github.addInstallation({
      appId: world.githubApp.appId,
      account: { login, type: "Organization" },
      repositories: ["x"],
      permissions: PERMISSIONS,
    });
    expect((await deliver("installation", world.github.installationEvent(gh.id, "created"))).status).toBe(200);
    expect(await unclaimedRow(gh.id)).toBeDefined();
    expect((await deliver("installation", world.github.installationEvent(gh.id, "deleted"))).status).toBe(200);
    expect(await unclaimedRow(gh.id)).toBeUndefined();
  });
});

describe("signatures", () => {
  let tenant: SeededTenant;
  let claimed: Claimed;
  beforeAll(async () => {
    tenant = await app.seedTenant();
    claimed = await installThroughBrowser(tenant);
  });

  /** Sends a suspend for the claimed installation with the signature made of its body; checks nothing changed. */
  async function refused(signatureOf: (body: string) => string | undefined) {
    const logBefore = await auditLog(tenant.tokens.admin);
    const body = JSON.stringify(world.github.installationEvent(claimed.githubId, "suspend"));
    world.github.unsuspend(claimed.githubId); // the fake's own state: the suspension never happened
    const deliveryId = randomUUID();
    const requestId = `wh-${randomUUID()}`;
    const res = await post(body, githubHeaders("installation", deliveryId, signatureOf(body), requestId));
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: { code: "UNAUTHENTICATED", message: expect.any(String) } });
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active", suspendedByProvider: false });
    expect(await auditLog(tenant.tokens.admin)).toEqual(logBefore);
    expect(await deliveryRows(deliveryId)).toEqual([]);
    return { requestId, deliveryId };
  }

  it("a wrong signature is 401, stores nothing in the tenant and records auth.failed in the platform log", async () => {
    const { requestId } = await refused(() => `sha256=${"0".repeat(64)}`);
    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => [e.tenant_id, e.event_type])).toEqual([[PLATFORM_TENANT, "auth.failed"]]);
    expect(json(events[0]!.data)).toMatchObject({
      reason: "webhook-signature-invalid",
      status: "failed",
      level: "warning",
      resource: "webhook",
      action: "github-webhook",
      details: { event: "installation" },
    });
  });

  it("a missing signature is 401 and recorded as webhook-signature-missing", async () => {
    const { requestId } = await refused(() => undefined);
    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => [e.tenant_id, e.event_type])).toEqual([[PLATFORM_TENANT, "auth.failed"]]);
    expect(json(events[0]!.data)).toMatchObject({ reason: "webhook-signature-missing", status: "failed" });
  });

  it("a body signed with another secret is 401", async () => {
    const other = randomBytes(20).toString("hex");
    registerSecret(other);
    await refused((body) => sign(body, other));
    // Also as the fake's own delivery, signed by the fake with the other key.
    const viaFake = await deliver("installation", world.github.installationEvent(claimed.githubId, "suspend"), { secret: other });
    world.github.unsuspend(claimed.githubId);
    expect(viaFake.status).toBe(401);
    expect(viaFake.body).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active" });
  });

  it("a signature over other bytes (body altered after signing) is 401", async () => {
    const body = JSON.stringify(world.github.installationEvent(claimed.githubId, "suspend"));
    world.github.unsuspend(claimed.githubId);
    const signature = sign(body);
    const altered = body.replace(`"id":${claimed.githubId}`, `"id":${claimed.githubId} `);
    expect(altered).not.toBe(body);
    const res = await post(altered, githubHeaders("installation", randomUUID(), signature));
    expect(res.status).toBe(401);
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active" });
  });

  it("the right signature on the same bytes is accepted (the refusals above were about the signature)", async () => {
    const body = JSON.stringify(world.github.installationEvent(claimed.githubId, "suspend"));
    const deliveryId = randomUUID();
    const res = await post(body, githubHeaders("installation", deliveryId, sign(body)));
    expect(res).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "suspended", suspendedByProvider: true });
    expect(byDelivery(await auditLog(tenant.tokens.admin), deliveryId)).toHaveLength(1);
  });
});

describe("signed bodies that could not be stored", () => {
  it("a NUL or a lone surrogate in a signed body is 400 BAD_USER_INPUT naming where, and nothing is stored", async () => {
    const tenant = await app.seedTenant();
    const claimed = await installThroughBrowser(tenant);
    const logBefore = await auditLog(tenant.tokens.admin);
    for (const hostile of ["evil\u0000login", "evil\ud800login"]) {
      const payload = world.github.installationEvent(claimed.githubId, "suspend") as { installation: { account: { login: string } } };
      world.github.unsuspend(claimed.githubId);
      payload.installation.account.login = hostile;
      const deliveryId = randomUUID();
      const res = await deliver("installation", payload, { deliveryId });
      expect(res).toMatchObject({ status: 400, body: { error: { code: "BAD_USER_INPUT", field: "body.installation.account.login" } } });
      expect(await deliveryRows(deliveryId)).toEqual([]);
    }
    expect(await auditLog(tenant.tokens.admin)).toEqual(logBefore);
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active" });
  });
});

describe("redelivery", () => {
  it("the same X-GitHub-Delivery again is 200 with duplicate true, and appends nothing", async () => {
    const tenant = await app.seedTenant();
    const claimed = await installThroughBrowser(tenant);
    const payload = world.github.installationRepositoriesEvent(claimed.githubId, { added: ["extra"] });
    const deliveryId = randomUUID();
    const first = await deliver("installation_repositories", payload, { deliveryId });
    expect(first).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    const logAfterFirst = await auditLog(tenant.tokens.admin);
    for (let i = 0; i < 2; i++) {
      const again = await deliver("installation_repositories", payload, { deliveryId });
      expect(again).toMatchObject({ status: 200, body: { ok: true, duplicate: true } });
    }
    const log = await auditLog(tenant.tokens.admin);
    expect(log).toEqual(logAfterFirst);
    expect(byDelivery(log, deliveryId).map((e) => e.type)).toEqual(["installation.repositories_changed"]);
    expect((await installation(claimed.id, tenant.tokens.viewer)).repositories).toEqual([`${claimed.login}/extra`]);
    expect(await deliveryRows(deliveryId)).toEqual([
      expect.objectContaining({ tenant_id: tenant.tenantId, event: "installation_repositories", action: "added" }),
    ]);
  });
});

describe("requests that are not deliveries", () => {
  let tenant: SeededTenant;
  let claimed: Claimed;
  beforeAll(async () => {
    tenant = await app.seedTenant();
    claimed = await installThroughBrowser(tenant);
  });

  /** A valid `installation_repositories` payload for the claimed installation, padded to `size` bytes. */
  function padded(size: number): Buffer {
    const payload = {
      action: "added",
      installation: { id: claimed.githubId, app_id: world.githubApp.appId },
      repository_selection: "selected",
      repositories_added: [{ full_name: `${claimed.login}/huge` }],
      repositories_removed: [],
      padding: "",
    };
    const base = Buffer.byteLength(JSON.stringify(payload));
    payload.padding = "x".repeat(size - base);
    const body = Buffer.from(JSON.stringify(payload));
    expect(body.length).toBe(size);
    return body;
  }

  async function expectUnchanged(deliveryId: string, logBefore: AuditNode[]) {
    expect(await deliveryRows(deliveryId)).toEqual([]);
    expect(await auditLog(tenant.tokens.admin)).toEqual(logBefore);
    expect((await installation(claimed.id, tenant.tokens.viewer)).repositories ?? []).toEqual([]);
  }

  it("a body over 25 MB with its Content-Length is 413, and nothing is stored", async () => {
    const logBefore = await auditLog(tenant.tokens.admin);
    const body = padded(LIMIT + 1024);
    const deliveryId = randomUUID();
    const res = await post(body, githubHeaders("installation_repositories", deliveryId, sign(body)));
    // The server answers before reading the body and closes the connection; should the close beat
    // the response to the client, only the connection error is seen.
    if (res.status !== undefined) {
      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({ error: { code: "BAD_USER_INPUT" } });
    } else {
      expect(res.error).toMatch(/ECONNRESET|EPIPE|socket hang up/);
    }
    await expectUnchanged(deliveryId, logBefore);
  });

  it("a body over 25 MB without Content-Length (chunked) is 413, and nothing is stored", async () => {
    const logBefore = await auditLog(tenant.tokens.admin);
    const body = padded(LIMIT + 1024);
    const deliveryId = randomUUID();
    const res = await post(body, githubHeaders("installation_repositories", deliveryId, sign(body)), { chunked: true });
    if (res.status !== undefined) expect(res.status).toBe(413);
    else expect(res.error).toMatch(/ECONNRESET|EPIPE|socket hang up/);
    await expectUnchanged(deliveryId, logBefore);
  });

  it("a body just under the limit is read (and here refused only for its signature)", async () => {
    const body = padded(LIMIT - 1024);
    const res = await post(body, githubHeaders("installation_repositories", randomUUID(), `sha256=${"1".repeat(64)}`));
    expect(res.status).toBe(401);
  });

  it("malformed JSON with a valid signature is 400", async () => {
    const logBefore = await auditLog(tenant.tokens.admin);
    const deliveryId = randomUUID();
    const body = `{"action":"added","installation":{"id":${claimed.githubId}`;
    const res = await post(body, githubHeaders("installation_repositories", deliveryId, sign(body)));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: "BAD_USER_INPUT" } });
    await expectUnchanged(deliveryId, logBefore);
  });

  it("a JSON body that is not an object, with a valid signature, is 400", async () => {
    const deliveryId = randomUUID();
    for (const body of ["null", "[1,2]", '"text"']) {
      const res = await post(body, githubHeaders("installation", deliveryId, sign(body)));
      expect(res.status, body).toBe(400);
      expect(res.body, body).toMatchObject({ error: { code: "BAD_USER_INPUT" } });
    }
    expect(await deliveryRows(deliveryId)).toEqual([]);
  });

  it("a missing or malformed X-GitHub-Delivery is 400", async () => {
    const logBefore = await auditLog(tenant.tokens.admin);
    const body = JSON.stringify(world.github.installationRepositoriesEvent(claimed.githubId, { added: ["nodelivery"] }));
    const missing = await post(body, githubHeaders("installation_repositories", undefined, sign(body)));
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: { code: "BAD_USER_INPUT" } });
    const malformed = await post(body, githubHeaders("installation_repositories", "not a delivery id!", sign(body)));
    expect(malformed.status).toBe(400);
    expect(await auditLog(tenant.tokens.admin)).toEqual(logBefore);
    expect((await installation(claimed.id, tenant.tokens.viewer)).repositories ?? []).toEqual([]);
  });

  it("a missing X-GitHub-Event is 400", async () => {
    const deliveryId = randomUUID();
    const body = JSON.stringify(world.github.installationRepositoriesEvent(claimed.githubId, { added: ["noevent"] }));
    const { "x-github-event": _omitted, ...headers } = githubHeaders("installation_repositories", deliveryId, sign(body));
    const res = await post(body, headers);
    expect(res.status).toBe(400);
    expect(await deliveryRows(deliveryId)).toEqual([]);
  });

  it("after all that, a proper delivery still goes through", async () => {
    const hook = await deliver("installation_repositories", world.github.installationRepositoriesEvent(claimed.githubId, { added: ["fine"] }));
    expect(hook).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    expect((await installation(claimed.id, tenant.tokens.viewer)).repositories).toContain(`${claimed.login}/fine`);
  });
});

describe("tenant isolation", () => {
  it("another tenant sees nothing of an installation or its webhooks, and cannot claim it", async () => {
    const a = await app.seedTenant();
    const b = await app.seedTenant();
    const claimed = await installThroughBrowser(a);
    const hooks = [
      await deliver("installation", world.github.installationEvent(claimed.githubId, "created")),
      await deliver("installation_repositories", world.github.installationRepositoriesEvent(claimed.githubId, { added: ["secret-project"] })),
      await deliver("installation", world.github.installationEvent(claimed.githubId, "suspend")),
      await deliver("installation", world.github.installationEvent(claimed.githubId, "unsuspend")),
      await deliver(
        "installation",
        world.github.installationEvent(claimed.githubId, "new_permissions_accepted", { permissions: { ...PERMISSIONS, issues: "write" } }),
      ),
    ];
    for (const hook of hooks) expect(hook.status).toBe(200);
    expect((await installation(claimed.id, a.tokens.viewer)).repositories).toContain(`${claimed.login}/secret-project`);

    for (const role of ["admin", "viewer", "editor", "service"] as const) {
      const one = await app.gql(INSTALLATION, { id: claimed.id }, { token: b.tokens[role] });
      expect(one.errors?.[0]?.extensions?.code, role).toBe("NOT_FOUND");
      expect(one.data?.installation ?? null, role).toBeNull();
      expect(JSON.stringify(one), role).not.toContain(claimed.login);
      if (role === "admin" || role === "viewer") {
        const list = await app.gql(INSTALLATIONS, {}, { token: b.tokens[role] });
        expect(list.errors, role).toBeUndefined();
        expect(list.data.installations.nodes, role).toEqual([]);
      }
    }
    const bLog = await auditLog(b.tokens.admin);
    expect(bLog.filter((e) => e.type.startsWith("installation."))).toEqual([]);
    expect(JSON.stringify(bLog)).not.toContain(claimed.login);
    for (const hook of hooks) expect(byDelivery(bLog, hook.deliveryId)).toEqual([]);

    // B installing the same GitHub installation is refused; A keeps it and its webhooks.
    world.github.setNextInstall({ account: { login: claimed.login, type: "Organization" }, repositories: ["api"], permissions: PERMISSIONS });
    const stolen = await browseInstall(app, "github", b.tokens.editor);
    expect(stolen.status).toBe(409);
    expect(stolen.body).toMatchObject({ error: { code: "CONFLICT" } });
    expect((await app.gql(INSTALLATIONS, {}, { token: b.tokens.admin })).data.installations.nodes).toEqual([]);
    // GitHub's bodies carry times to the second: this suspension, a second after the first, is not a
    // byte-for-byte copy of it (the same body twice would be taken for a replay; see "replays").
    world.github.setClockOffset(1000);
    const after = await deliver("installation", world.github.installationEvent(claimed.githubId, "suspend")).finally(() => world.github.setClockOffset(0));
    expect(after.status).toBe(200);
    expect(await installation(claimed.id, a.tokens.viewer)).toMatchObject({ status: "suspended", suspendedByProvider: true });
    expect(byDelivery(await auditLog(b.tokens.admin), after.deliveryId)).toEqual([]);
    expect(byDelivery(await auditLog(a.tokens.admin), after.deliveryId)).toHaveLength(1);
  });
});

describe("replays: GitHub's signature covers the body, not X-GitHub-Delivery or X-GitHub-Event", () => {
  let tenant: SeededTenant;
  let claimed: Claimed;
  beforeAll(async () => {
    tenant = await app.seedTenant();
    claimed = await installThroughBrowser(tenant);
  });

  async function payloadRows(body: string) {
    const hash = createHash("sha256").update(body).digest("hex");
    return withPlatform(app.database.db, (trx) =>
      sql<{
        delivery_id: string;
        expires_at: Date;
      }>`select delivery_id, expires_at from webhook_payloads where provider = 'github' and payload_sha256 = ${hash}`.execute(trx),
    ).then((r) => r.rows);
  }

  it("a signed body replayed under a new X-GitHub-Delivery answers like a redelivery (200, duplicate) and appends nothing", async () => {
    // GitHub suspends, then lifts the suspension; someone who captured the suspend sends it again.
    const suspend = JSON.stringify(world.github.installationEvent(claimed.githubId, "suspend"));
    const first = await post(suspend, githubHeaders("installation", randomUUID(), sign(suspend)));
    expect(first).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    expect((await deliver("installation", world.github.installationEvent(claimed.githubId, "unsuspend"))).status).toBe(200);
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active", suspendedByProvider: false });
    const logBefore = await auditLog(tenant.tokens.admin);

    const replays = [randomUUID(), randomUUID()];
    const requestIds: string[] = [];
    for (const deliveryId of replays) {
      const requestId = `wh-${randomUUID()}`;
      requestIds.push(requestId);
      const replay = await post(suspend, githubHeaders("installation", deliveryId, sign(suspend), requestId));
      expect(replay).toMatchObject({ status: 200, body: { ok: true, duplicate: true } });
      expect(await deliveryRows(deliveryId)).toEqual([]);
    }
    // Recorded in the platform log (sampled: one a minute per address): the replayed delivery id, never the body.
    const events = await eventsOfRequest(requestIds[0]!);
    expect(events.map((e) => [e.tenant_id, e.event_type])).toEqual([[PLATFORM_TENANT, "access.denied"]]);
    expect(json(events[0]!.data)).toMatchObject({
      reason: "webhook-replayed",
      resource: "webhook",
      details: { deliveryId: replays[0], event: "installation" },
    });
    expect(JSON.stringify(events)).not.toContain(world.githubApp.webhookSecret);
    // A different body still goes through.
    const other = JSON.stringify(world.github.installationRepositoriesEvent(claimed.githubId, { added: ["after-replay"] }));
    expect(await post(other, githubHeaders("installation_repositories", randomUUID(), sign(other)))).toMatchObject({
      status: 200,
      body: { ok: true, duplicate: false },
    });
    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active", suspendedByProvider: false });
    const log = await auditLog(tenant.tokens.admin);
    expect(log.filter((e) => e.type === "installation.suspended")).toHaveLength(1);
    for (const deliveryId of replays) expect(byDelivery(log, deliveryId)).toEqual([]);
    expect(log.filter((e) => !logBefore.some((b) => b.eventId === e.eventId)).map((e) => e.type)).toEqual(["installation.repositories_changed"]);
    expect(await payloadRows(suspend)).toHaveLength(1);
  });

  it("is recognised by another Keyplane process on the same database", async () => {
    const second = await createTestApp({ env: { ...world.env, PORT: "0" }, database: app.database, name: "github-webhooks-second" });
    try {
      const body = JSON.stringify(world.github.installationRepositoriesEvent(claimed.githubId, { added: ["twice"] }));
      const first = await post(body, githubHeaders("installation_repositories", randomUUID(), sign(body)));
      expect(first).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
      const logBefore = await auditLog(tenant.tokens.admin);
      const deliveryId = randomUUID();
      const res = await fetch(`${second.url}/webhooks/github`, {
        method: "POST",
        headers: { "content-type": "application/json", ...githubHeaders("installation_repositories", deliveryId, sign(body)) },
        body,
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ ok: true, duplicate: true });
      expect(await auditLog(tenant.tokens.admin)).toEqual(logBefore);
      expect(await deliveryRows(deliveryId)).toEqual([]);
    } finally {
      await second.close();
    }
  });

  it("a signed body of another event is not taken for `installation`: a duplicate once seen, refused (400, nothing stored) before", async () => {
    // Every event of the app carries the installation by id; only the header says which event it is.
    const repositoryDeleted = (name: string) =>
      JSON.stringify({
        action: "deleted",
        repository: { id: Math.floor(Math.random() * 1e9), name, full_name: `${claimed.login}/${name}` },
        installation: { id: claimed.githubId, node_id: "MDIz" },
        sender: { login: `${claimed.login}-admin` },
      });
    const logBefore = await auditLog(tenant.tokens.admin);

    // Seen under its own event first: any replay of it is a duplicate, whatever the header says.
    const seen = repositoryDeleted("old-repo");
    expect(await post(seen, githubHeaders("repository", randomUUID(), sign(seen)))).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });
    const asInstallation = randomUUID();
    expect(await post(seen, githubHeaders("installation", asInstallation, sign(seen)))).toMatchObject({ status: 200, body: { ok: true, duplicate: true } });
    expect(await deliveryRows(asInstallation)).toEqual([]);

    // Never seen here: refused, and nothing kept of it.
    const unseen = repositoryDeleted("other-repo");
    const requestId = `wh-${randomUUID()}`;
    const forged = randomUUID();
    const refused = await post(unseen, githubHeaders("installation", forged, sign(unseen), requestId));
    expect(refused).toMatchObject({ status: 400, body: { error: { code: "BAD_USER_INPUT" } } });
    expect(await deliveryRows(forged)).toEqual([]);
    expect(await payloadRows(unseen)).toEqual([]);
    const events = await eventsOfRequest(requestId);
    expect(events.map((e) => [e.tenant_id, e.event_type])).toEqual([[PLATFORM_TENANT, "access.denied"]]);
    expect(json(events[0]!.data)).toMatchObject({ reason: "webhook-event-mismatch", details: { deliveryId: forged, event: "installation" } });
    // ...so its real delivery still goes through as new.
    expect(await post(unseen, githubHeaders("repository", randomUUID(), sign(unseen)))).toMatchObject({ status: 200, body: { ok: true, duplicate: false } });

    expect(await installation(claimed.id, tenant.tokens.viewer)).toMatchObject({ status: "active", revokedAt: null });
    expect(await auditLog(tenant.tokens.admin)).toEqual(logBefore);
  });

  it("a body is remembered for the delivery window, then accepted again (and expired hashes are pruned)", async () => {
    const body = JSON.stringify(world.github.installationRepositoriesEvent(claimed.githubId, { added: ["window"] }));
    const delivery = (deliveryId: string) => ({
      deliveryId,
      event: "installation_repositories",
      signature: sign(body),
      targetAppId: String(world.githubApp.appId),
      rawBody: Buffer.from(body),
    });
    expect(await handleGitHubWebhook(app.kp.deps, delivery(randomUUID()))).toMatchObject({ duplicate: false, tenantId: tenant.tenantId });
    const [row] = await payloadRows(body);
    expect(new Date(row!.expires_at).getTime() - Date.now()).toBeGreaterThan((WEBHOOK_PAYLOAD_MEMORY_SECONDS - 60) * 1000);
    const inWindow = { ...app.kp.deps, now: () => new Date(Date.now() + (WEBHOOK_PAYLOAD_MEMORY_SECONDS - 3600) * 1000) };
    expect(await handleGitHubWebhook(inWindow, delivery(randomUUID()))).toMatchObject({ duplicate: true, applied: [] });

    const later = { ...app.kp.deps, now: () => new Date(Date.now() + (WEBHOOK_PAYLOAD_MEMORY_SECONDS + 3600) * 1000) };
    const afterWindow = randomUUID();
    const outcome = await handleGitHubWebhook(later, delivery(afterWindow));
    expect(outcome).toMatchObject({ duplicate: false, tenantId: tenant.tenantId, applied: ["installation.repositories_changed"] });
    expect(byDelivery(await auditLog(tenant.tokens.admin), afterWindow)).toHaveLength(1);
    expect((await payloadRows(body)).map((r) => r.delivery_id)).toEqual([afterWindow]);
    // The periodic prune deletes the other bodies whose window had ended by then.
    expect((await pruneInstallationState(later)).payloads).toBeGreaterThanOrEqual(1);
    const expired = await withPlatform(app.database.db, (trx) =>
      sql<{
        n: number;
      }>`select count(*)::int as n from webhook_payloads where expires_at <= now() + ${`${WEBHOOK_PAYLOAD_MEMORY_SECONDS} seconds`}::interval`.execute(trx),
    );
    expect(Number(expired.rows[0]!.n)).toBe(0);
    // And, once its own window has ended, this body too, though no delivery came.
    const prunedLater = { ...app.kp.deps, now: () => new Date(Date.now() + (2 * WEBHOOK_PAYLOAD_MEMORY_SECONDS + 7200) * 1000) };
    expect((await pruneInstallationState(prunedLater)).payloads).toBeGreaterThanOrEqual(1);
    expect(await payloadRows(body)).toEqual([]);
  });
});
