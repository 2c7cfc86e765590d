import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { sql } from "kysely";
import type { RequestMeta } from "../../auth/actor.ts";
import type { InstallationCommand } from "../../domain/installation/decide.ts";
import { assertWellFormedInput, truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { installationDecider, installationStream } from "../../domain/installation/decider.ts";
import { BadInputError, DomainError, NotFoundError } from "../../errors.ts";
import { withPlatform, type Tx } from "../../store/db.ts";
import type { EventMetadata } from "../../store/events/types.ts";
import { findGitHubOwner } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { revokeInstallationTokens } from "../githubTokens/revokeGitHubToken.ts";

/**
 * How long a webhook body is remembered, like its delivery id (pruneInstallationState keeps those 30
 * days): GitHub redelivers an old delivery on request, with its id and body unchanged.
 */
export const WEBHOOK_PAYLOAD_MEMORY_SECONDS = 30 * 86400;

export class WebhookSignatureError extends DomainError {
  constructor() {
    super("UNAUTHENTICATED", "webhook signature missing or invalid");
  }
}

export interface GitHubDelivery {
  deliveryId: string | undefined;
  event: string | undefined;
  signature: string | undefined;
  /** X-GitHub-Hook-Installation-Target-ID: the app the delivery is for. */
  targetAppId?: string;
  rawBody: Buffer;
}

export interface WebhookOutcome {
  deliveryId: string;
  duplicate: boolean;
  tenantId: string | null;
  applied: string[];
}

/** X-Hub-Signature-256: HMAC-SHA256 of the exact bytes received, compared in constant time. */
export function verifyGitHubSignature(secret: string, rawBody: Buffer, header: string | undefined): boolean {
  if (!header || !/^sha256=[0-9a-f]{64}$/.test(header)) return false;
  const expected = createHmac("sha256", secret).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(header.slice(7), "hex"));
}

interface RepositoryRef {
  full_name?: string;
  name?: string;
}
const repoNames = (list: unknown): string[] =>
  Array.isArray(list) ? list.map((r: RepositoryRef) => r.full_name ?? r.name).filter((n): n is string => typeof n === "string") : [];

/**
 * A GitHub App webhook: verified, deduplicated, and mapped onto the installation of the tenant that
 * claimed it — or onto the unclaimed pool the install callback takes over later.
 *
 * GitHub's signature covers the body and nothing else: X-GitHub-Delivery and X-GitHub-Event are
 * unsigned headers. So a delivery is deduplicated twice, in the transaction that appends its events:
 * on its delivery id (a redelivery), and on the SHA-256 of its body for WEBHOOK_PAYLOAD_MEMORY_SECONDS
 * (a captured body replayed under a new delivery id, or under another event's name). Both answer as a
 * duplicate and append nothing; an expired body hash counts for nothing and is taken over, and
 * pruneInstallationState deletes those nobody took over. And a body is only mapped as the event its header names when it has
 * that event's shape (an `installation` body of this app), so a signed body of another event that was
 * never seen here cannot be replayed as `installation` `deleted`.
 */
export async function handleGitHubWebhook(
  deps: Pick<AppDeps, "db" | "githubApps" | "security" | "logger" | "now" | "tokenCache">,
  delivery: GitHubDelivery,
  request: RequestMeta = {},
): Promise<WebhookOutcome> {
  // Each app has its own webhook secret; GitHub names the app in X-GitHub-Hook-Installation-Target-ID.
  const apps = deps.githubApps.registry
    .names()
    .map((name) => deps.githubApps.registry.get(name)!)
    .filter((a) => a.webhookSecret);
  if (!apps.length) throw new NotFoundError("webhook endpoint");
  const named = delivery.targetAppId ? deps.githubApps.registry.byAppId(delivery.targetAppId) : undefined;
  const candidates = named ? [named] : apps;
  const app = candidates.find((a) => a.webhookSecret && verifyGitHubSignature(a.webhookSecret, delivery.rawBody, delivery.signature));
  if (!app) {
    await deps.security.authFailed({
      tenantId: null,
      actor: null,
      reason: delivery.signature ? "webhook-signature-invalid" : "webhook-signature-missing",
      resource: "webhook",
      action: "github-webhook",
      details: { event: delivery.event?.slice(0, 60) ?? null },
      request,
    });
    throw new WebhookSignatureError();
  }
  const deliveryId = delivery.deliveryId;
  if (!deliveryId || !/^[A-Za-z0-9-]{1,100}$/.test(deliveryId)) throw new BadInputError("X-GitHub-Delivery: missing or malformed", "X-GitHub-Delivery");
  const event = delivery.event ?? "";
  if (!/^[a-z_]{1,60}$/.test(event)) throw new BadInputError("X-GitHub-Event: missing or malformed", "X-GitHub-Event");
  let payload: Record<string, any>;
  try {
    payload = JSON.parse(delivery.rawBody.toString("utf8"));
  } catch {
    throw new BadInputError("body: not JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) throw new BadInputError("body: not a JSON object");
  // Signed by GitHub, still input: a NUL or a lone surrogate could not be stored (BAD_USER_INPUT naming where).
  assertWellFormedInput(payload, "body");
  const action = typeof payload.action === "string" ? truncateWellFormed(payload.action, 60) : null;
  // Checked after the deduplication, so a body handled before is a duplicate under any event name.
  const mismatch = (event === "installation" || event === "installation_repositories") && !hasShapeOf(event, payload, app.appId);

  const now = deps.now();
  const bodyHash = createHash("sha256").update(delivery.rawBody).digest("hex");
  const forget: string[] = [];
  const handleDelivery = (): Promise<WebhookOutcome & { replayed?: true }> =>
    withPlatform(deps.db, async (trx) => {
      // The body first: a row of the window that is still running means this body was handled
      // (whatever delivery id it came with now); an expired one is taken over.
      const firstOfBody = await sql<{ delivery_id: string }>`
      insert into webhook_payloads (provider, payload_sha256, delivery_id, received_at, expires_at)
      values ('github', ${bodyHash}, ${deliveryId}, ${now}, ${new Date(now.getTime() + WEBHOOK_PAYLOAD_MEMORY_SECONDS * 1000)})
      on conflict (provider, payload_sha256) do update
        set delivery_id = excluded.delivery_id, received_at = excluded.received_at, expires_at = excluded.expires_at
        where webhook_payloads.expires_at <= excluded.received_at
      returning delivery_id`.execute(trx);
      if (!firstOfBody.rows.length) return { deliveryId, duplicate: true, tenantId: null, applied: [], replayed: true };
      const fresh = await trx
        .insertInto("webhook_deliveries")
        .values({ provider: "github", delivery_id: deliveryId, event, action, tenant_id: null, received_at: now })
        .onConflict((oc) => oc.columns(["provider", "delivery_id"]).doNothing())
        .returning("delivery_id")
        .executeTakeFirst();
      if (!fresh) return { deliveryId, duplicate: true, tenantId: null, applied: [] };
      if (mismatch) throw new EventMismatch();
      const installationId = payload.installation?.id;
      if ((event !== "installation" && event !== "installation_repositories") || typeof installationId !== "number") {
        return { deliveryId, duplicate: false, tenantId: null, applied: [] };
      }
      const externalId = String(installationId);
      const owner = await findGitHubOwner(trx, externalId);
      if (!owner) {
        await updateUnclaimed(trx, event, action, externalId, payload, deps.now());
        return { deliveryId, duplicate: false, tenantId: null, applied: [] };
      }
      const commands = commandsFor(event, action, payload);
      const metadata: EventMetadata = {
        actor: { subject: "github-webhook", kind: "platform", roles: [] },
        deliveryId,
        ...(typeof payload.sender?.login === "string" ? { sender: payload.sender.login } : {}),
        ...(request.requestId ? { requestId: request.requestId } : {}),
        ...(request.sourceIp ? { sourceIp: request.sourceIp } : {}),
      };
      const applied: string[] = [];
      for (const command of commands) {
        const { stored } = await decideAndAppend(trx, {
          tenantId: owner.tenant_id,
          ...installationStream(owner.installation_id),
          decider: installationDecider,
          command,
          metadata,
          occurredAt: now,
        });
        applied.push(...stored.map((e) => e.type));
      }
      // Uninstalled or suspended at GitHub: GitHub already refuses its tokens; the record says so too.
      if (event === "installation" && (action === "deleted" || action === "suspend")) {
        const reason = action === "deleted" ? "installation_deleted" : "installation_suspended";
        forget.push(
          ...(await revokeInstallationTokens(trx, {
            tenantId: owner.tenant_id,
            installationId: owner.installation_id,
            reason,
            revokedAtGitHub: true,
            now: deps.now(),
            metadata,
          })),
        );
      }
      await trx
        .updateTable("webhook_deliveries")
        .set({ tenant_id: owner.tenant_id })
        .where("provider", "=", "github")
        .where("delivery_id", "=", deliveryId)
        .execute();
      deps.logger.info({ tenantId: owner.tenant_id, installationId: owner.installation_id, event, action, applied }, "github webhook applied");
      return { deliveryId, duplicate: false, tenantId: owner.tenant_id, applied };
    });
  let outcome;
  try {
    outcome = await handleDelivery();
  } catch (error) {
    if (!(error instanceof EventMismatch)) throw error;
    // Rolled back: nothing of it is stored, so the body still counts as new under its own event.
    await recordRefusedDelivery(deps, "webhook-event-mismatch", { deliveryId, event }, request);
    throw new BadInputError(`body: not an ${event} event of this app`, "X-GitHub-Event");
  }
  for (const fp of forget) deps.tokenCache.forgetFingerprint(fp);
  // GitHub keeps the delivery id when it redelivers: a body seen before under another id is a replay.
  if (outcome.replayed) {
    const first = await withPlatform(deps.db, (trx) =>
      trx.selectFrom("webhook_deliveries").select("delivery_id").where("provider", "=", "github").where("delivery_id", "=", deliveryId).executeTakeFirst(),
    );
    if (!first) await recordRefusedDelivery(deps, "webhook-replayed", { deliveryId, event }, request);
  }
  return { deliveryId: outcome.deliveryId, duplicate: outcome.duplicate, tenantId: outcome.tenantId, applied: outcome.applied };
}

/** Thrown inside the delivery's transaction (rolling it back) when the body is not the event its header names. */
class EventMismatch extends Error {}

/** A signed body Keyplane does not act on (replayed, or under another event's name): a platform security event. */
async function recordRefusedDelivery(deps: Pick<AppDeps, "security">, reason: string, details: { deliveryId: string; event: string }, request: RequestMeta) {
  await deps.security.accessDenied({
    tenantId: null,
    actor: null,
    reason,
    resource: "webhook",
    action: "github-webhook",
    details: { deliveryId: details.deliveryId, event: details.event.slice(0, 60) },
    request,
  });
}

/**
 * The body has the shape of the event its (unsigned) X-GitHub-Event header names: GitHub sends every
 * event of an app with the same signature, and only `installation` and `installation_repositories`
 * bodies carry the whole installation (with `account` and `app_id`); other events name it by id only.
 */
function hasShapeOf(event: "installation" | "installation_repositories", payload: Record<string, any>, appId: string): boolean {
  const installation = payload.installation;
  if (typeof installation !== "object" || installation === null || typeof installation.id !== "number") return false;
  if (typeof installation.account !== "object" || installation.account === null) return false;
  // The app's numeric id when it is configured by id (a client id cannot be compared).
  if (/^\d+$/.test(appId) && installation.app_id !== Number(appId)) return false;
  if (event === "installation_repositories") return Array.isArray(payload.repositories_added) && Array.isArray(payload.repositories_removed);
  return true;
}

function commandsFor(event: string, action: string | null, payload: Record<string, any>): InstallationCommand[] {
  if (event === "installation_repositories") {
    return [
      {
        type: "ChangeRepositories",
        repositorySelection: payload.repository_selection,
        added: repoNames(payload.repositories_added),
        removed: repoNames(payload.repositories_removed),
      },
    ];
  }
  switch (action) {
    // The callback arrived first: the webhook still knows the repository list the API call did not give.
    case "created":
      return [{ type: "ChangeRepositories", added: repoNames(payload.repositories), removed: [] }];
    case "deleted":
      return [{ type: "RevokeInstallation", by: "provider", providerRevoked: true, reason: "uninstalled on GitHub" }];
    case "suspend":
      return [{ type: "SuspendInstallation", by: "provider", reason: "suspended on GitHub" }];
    case "unsuspend":
      return [{ type: "ResumeInstallation", by: "provider" }];
    case "new_permissions_accepted":
      return [{ type: "UpdatePermissions", permissions: payload.installation?.permissions ?? {}, events: payload.installation?.events }];
    default:
      return [];
  }
}

/** Nobody claimed this installation yet: keep what GitHub says about it for the claiming callback. */
async function updateUnclaimed(trx: Tx, event: string, action: string | null, externalId: string, payload: Record<string, any>, now: Date) {
  const existing = await trx.selectFrom("github_unclaimed_installations").selectAll().where("external_id", "=", externalId).executeTakeFirst();
  if (event === "installation" && action === "deleted") {
    await trx.deleteFrom("github_unclaimed_installations").where("external_id", "=", externalId).execute();
    return;
  }
  const installation = payload.installation ?? {};
  const account = installation.account ?? {};
  let repositories = new Set<string>(existing?.repositories ?? []);
  if (event === "installation" && action === "created") repositories = new Set(repoNames(payload.repositories));
  if (event === "installation_repositories") {
    for (const name of repoNames(payload.repositories_added)) repositories.add(name);
    for (const name of repoNames(payload.repositories_removed)) repositories.delete(name);
  }
  const row = {
    account: JSON.stringify({
      id: String(account.id ?? ""),
      login: String(account.login ?? ""),
      type: String(account.type ?? ""),
      ...(account.html_url ? { url: account.html_url } : {}),
    }),
    permissions: JSON.stringify(installation.permissions ?? {}),
    repository_selection: payload.repository_selection ?? installation.repository_selection ?? null,
    repositories: JSON.stringify([...repositories].sort()),
    suspended: action === "suspend" ? true : action === "unsuspend" ? false : (existing?.suspended ?? Boolean(installation.suspended_at)),
    updated_at: now,
  };
  await trx
    .insertInto("github_unclaimed_installations")
    .values({ external_id: externalId, ...row, received_at: now })
    .onConflict((oc) => oc.column("external_id").doUpdateSet(row))
    .execute();
}
