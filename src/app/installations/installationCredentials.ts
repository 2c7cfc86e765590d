import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { parseInput } from "../../domain/validation.ts";
import { installationDecider, installationStream } from "../../domain/installation/decider.ts";
import { ConflictError, NotFoundError } from "../../errors.ts";
import type { Platform, ProviderCredentials } from "../../providers/provider.ts";
import { withTenant } from "../../store/db.ts";
import { fingerprint } from "../../crypto/fingerprint.ts";
import { findInstallation, type InstallationRow } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { providerOf } from "./startInstallation.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { currentCredentials, lockInstallation } from "./refreshCredentials.ts";

export const InstallationIdInput = z.object({ id: z.string().uuid("not an installation id") });

export interface HandedOutCredentials {
  installationId: string;
  platform: Platform;
  externalId: string;
  accessToken: string;
  expiresAt?: Date;
}

/** The caller's installation, or NOT_FOUND (also for another tenant's id: nothing tells them apart). */
export async function loadInstallation(deps: Pick<AppDeps, "db">, actor: Actor, rawId: unknown): Promise<InstallationRow> {
  const { id } = parseInput(InstallationIdInput, { id: rawId });
  const row = await withTenant(deps.db, actor.tenantId, (trx) => findInstallation(trx, actor.tenantId, id));
  if (!row) throw new NotFoundError("installation");
  return row;
}

/**
 * A usable access token for a service: GitHub's minted with the app key, Slack's and Jira's from the
 * vault, refreshed first when near expiry. Every hand-out is a credentials.read event with the
 * token's fingerprint, committed before the token leaves.
 */
export async function installationCredentials(
  deps: Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "logger" | "now">,
  actor: Actor,
  rawId: unknown,
  request: RequestMeta = {},
): Promise<HandedOutCredentials> {
  const row = await loadInstallation(deps, actor, rawId);
  if (row.status !== "active")
    throw new ConflictError(`installation is ${row.status.replace("_", " ")}: no credentials are handed out`, { status: row.status });
  const provider = providerOf(deps, row);
  if (!provider) throw new ConflictError(`${row.platform} is not configured on this Keyplane`);
  let credentials: ProviderCredentials;
  if (row.platform === "github") {
    credentials = await provider.mintInstallationToken!(row.external_id);
  } else {
    credentials = (await currentCredentials(deps, actor.tenantId, row.installation_id)).credentials;
  }
  // Concurrent reads of one installation each append to its stream: they take turns on its lock
  // rather than failing on the stream version.
  await withTenant(deps.db, actor.tenantId, async (trx) => {
    await lockInstallation(trx, actor.tenantId, row.installation_id);
    await decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...installationStream(row.installation_id),
      decider: installationDecider,
      command: { type: "ReadCredentials", fingerprint: fingerprint(credentials.accessToken), expiresAt: credentials.expiresAt?.toISOString() },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
  });
  return {
    installationId: row.installation_id,
    platform: row.platform,
    externalId: row.external_id,
    accessToken: credentials.accessToken,
    expiresAt: credentials.expiresAt,
  };
}
