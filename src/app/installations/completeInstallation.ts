import { randomUUID } from "node:crypto";
import type { RequestMeta } from "../../auth/actor.ts";
import type { InstallationInfoData } from "../../domain/installation/events.ts";
import { installationDecider, installationStream } from "../../domain/installation/decider.ts";
import { ConflictError } from "../../errors.ts";
import type { CompletedInstallation, Platform } from "../../providers/provider.ts";
import { withPlatform, withTenant, type Tx } from "../../store/db.ts";
import type { EventMetadata } from "../../store/events/types.ts";
import { findGitHubOwner, findInstallation, findLiveByExternalId, type InstallationRow } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { acceptOAuthState, refusalOf, stateAad } from "../oauthStates.ts";
import { callbackUrl, providerFor } from "./startInstallation.ts";
import { storeCredentials } from "./vault.ts";

export interface CompletedCallback {
  tenantId: string;
  installation: InstallationRow;
  outcome: "created" | "reauthorized";
}

type Deps = Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "security" | "logger" | "now">;

/**
 * The provider's redirect back: consumes the OAuth state exactly once, lets the provider finish
 * (code exchange or installation check), then records the installation in the tenant that started
 * it, as the actor who started it. A bad state stores nothing but a security event.
 */
export async function completeInstallation(deps: Deps, platform: string, query: URLSearchParams, request: RequestMeta = {}): Promise<CompletedCallback> {
  const { provider: platformProvider } = providerFor(deps, platform);
  const refuse = refusalOf(deps, request, { resource: "installation", action: "oauth-callback", platform: platformProvider.platform });
  const consumed = await acceptOAuthState(
    deps,
    query.get("state"),
    { purpose: "install", platform: platformProvider.platform, again: "the installation" },
    refuse,
  );
  // The app the install was started for (GitHub); its provider finishes it.
  const { provider, app } = providerFor(deps, platform, consumed.app);
  const codeVerifier = consumed.code_verifier ? deps.keyring.decrypt(consumed.code_verifier, stateAad(consumed.request_id)) : undefined;
  const completed = await provider.completeInstallation({ query, redirectUri: callbackUrl(deps, provider.platform), codeVerifier });

  const tenantId = consumed.tenant_id;
  const metadata: EventMetadata = { actor: consumed.actor, ...Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined)) };
  const args = { tenantId, requestId: consumed.request_id, platform: provider.platform, app, completed, metadata };
  if (provider.platform !== "github") return withTenant(deps.db, tenantId, (trx) => record(deps, trx, args));

  // A GitHub installation has one owner: the claim, the take-over of what webhooks announced before
  // the callback, and the cross-tenant check happen in one platform-wide transaction.
  const result = await withPlatform(deps.db, async (trx) => {
    const owner = await findGitHubOwner(trx, completed.info.externalId);
    if (owner && owner.tenant_id !== tenantId) return { claimedElsewhere: true as const };
    const unclaimed = await trx
      .deleteFrom("github_unclaimed_installations")
      .where("external_id", "=", completed.info.externalId)
      .returningAll()
      .executeTakeFirst();
    return {
      claimedElsewhere: false as const,
      done: await record(deps, trx, { ...args, repositories: unclaimed?.repositories, suspended: unclaimed?.suspended }),
    };
  }).catch((error: unknown) => {
    // Two tenants claiming one installation at the same moment: the unique index lets one through.
    if ((error as { code?: string }).code === "23505") return { claimedElsewhere: true as const };
    throw error;
  });
  if (result.claimedElsewhere) {
    await deps.security.accessDenied({
      tenantId,
      actor: null,
      level: "critical",
      reason: "installation-claimed-by-another-tenant",
      resource: "installation",
      action: "oauth-callback",
      details: { platform: "github", externalId: completed.info.externalId, startedBy: consumed.actor.subject },
      request,
    });
    throw new ConflictError("this GitHub installation is connected to another tenant");
  }
  return result.done;
}

async function record(
  deps: Deps,
  trx: Tx,
  args: {
    tenantId: string;
    requestId: string;
    platform: Platform;
    app?: string;
    completed: CompletedInstallation;
    metadata: EventMetadata;
    repositories?: string[];
    suspended?: boolean;
  },
): Promise<CompletedCallback> {
  const { tenantId, requestId, platform, completed, metadata } = args;
  const info: InstallationInfoData = completed.info;
  const existing = await findLiveByExternalId(trx, tenantId, platform, info.externalId);
  const installationId = existing?.installation_id ?? randomUUID();
  const now = deps.now();
  const credentials = completed.credentials ? await storeCredentials(trx, deps.keyring, tenantId, installationId, completed.credentials, now) : undefined;
  const command = existing
    ? { type: "ReauthorizeInstallation" as const, info, requestId, credentials }
    : { type: "CreateInstallation" as const, installationId, platform, app: args.app, info, requestId, repositories: args.repositories, credentials };
  await decideAndAppend(trx, { tenantId, ...installationStream(installationId), decider: installationDecider, command, metadata, occurredAt: now });
  const suspendedAtProvider = args.suspended || (platform === "github" && Boolean(info.details?.suspendedAt));
  if (suspendedAtProvider && !existing) {
    await decideAndAppend(trx, {
      tenantId,
      ...installationStream(installationId),
      decider: installationDecider,
      command: { type: "SuspendInstallation", by: "provider", reason: "suspended at GitHub" },
      metadata,
      occurredAt: now,
    });
  }
  deps.logger.info({ tenantId, installationId, platform }, existing ? "installation reauthorized" : "installation created");
  return { tenantId, installation: (await findInstallation(trx, tenantId, installationId))!, outcome: existing ? "reauthorized" : "created" };
}
