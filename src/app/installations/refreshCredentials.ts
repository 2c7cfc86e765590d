import { sql } from "kysely";
import { systemActor, eventMetadata } from "../../auth/actor.ts";
import { installationDecider, installationStream } from "../../domain/installation/decider.ts";
import { ConflictError, DomainError } from "../../errors.ts";
import { ProviderError, type ProviderCredentials } from "../../providers/provider.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import { findInstallation } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { providerOf } from "./startInstallation.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { readCredentials, storeCredentials } from "./vault.ts";

type Deps = Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "logger" | "now">;

const MAX_BACKOFF_MS = 60 * 60_000;
/** Exponential backoff from 30 s, capped at an hour, with ±20% jitter so processes and installations spread out. */
export const backoffMs = (attempt: number, random = Math.random()) => Math.min(30_000 * 2 ** (attempt - 1), MAX_BACKOFF_MS) * (0.8 + 0.4 * random);

export interface CurrentCredentials {
  credentials: ProviderCredentials;
  refreshed: boolean;
  /** Set when a refresh was attempted and failed transiently while the stored token still lives. */
  refreshError?: ProviderError;
}

// Per Keyplane (its database handle), not per module: two Keyplanes in one Node process (tests
// playing two processes) must not share attempts, or the advisory lock is never exercised.
const inFlightByDb = new WeakMap<object, Map<string, Promise<CurrentCredentials>>>();

/**
 * The installation's stored credentials, refreshed first when they expire within the refresh window
 * (or when forced). The refresh runs under a PostgreSQL advisory lock per installation, held by the
 * transaction that also stores the result: a second process waits, then finds fresh credentials and
 * does not spend the (rotating, single-use) refresh token again. Within one process, concurrent
 * callers share one attempt.
 */
export function currentCredentials(deps: Deps, tenantId: string, installationId: string, options: { force?: boolean } = {}): Promise<CurrentCredentials> {
  const key = `${tenantId}:${installationId}:${options.force ? "force" : ""}`;
  let inFlight = inFlightByDb.get(deps.db);
  if (!inFlight) inFlightByDb.set(deps.db, (inFlight = new Map()));
  const running = inFlight.get(key);
  if (running) return running;
  const attempt = refreshUnderLock(deps, tenantId, installationId, options.force ?? false).finally(() => inFlight!.delete(key));
  inFlight.set(key, attempt);
  return attempt;
}

/**
 * Serializes work on one installation across processes until the transaction ends: refreshes (which
 * spend single-use refresh tokens) and appends that decide on the installation's current version.
 */
export async function lockInstallation(trx: Tx, tenantId: string, installationId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`keyplane:installation:${tenantId}:${installationId}`}, 0))`.execute(trx);
}

async function refreshUnderLock(deps: Deps, tenantId: string, installationId: string, force: boolean): Promise<CurrentCredentials> {
  const outcome = await withTenant(deps.db, tenantId, async (trx) => {
    await lockInstallation(trx, tenantId, installationId);
    const row = await findInstallation(trx, tenantId, installationId);
    if (row?.status !== "active")
      throw new ConflictError(`installation is ${row?.status.replace("_", " ") ?? "gone"}: no credentials are handed out`, { status: row?.status ?? null });
    const stored = await readCredentials(trx, deps.keyring, tenantId, installationId, true);
    if (!stored) throw new ConflictError("installation has no stored credentials");
    const current = stored.credentials;
    const now = deps.now();
    const due = current.expiresAt !== undefined && current.expiresAt.getTime() - now.getTime() < deps.config.installations.refreshWindowSeconds * 1000;
    // Tokens without expiry or without a refresh token (Slack apps without rotation) are used as they are.
    if ((!due && !force) || !current.refreshToken) return { credentials: current, refreshed: false };
    // While a failed refresh waits out its backoff, readers get the token as long as it lives, and
    // do not hammer the provider (nor fill the log with failures).
    const backoffUntil = row.next_refresh_at ? new Date(row.next_refresh_at) : undefined;
    if (!force && backoffUntil && backoffUntil > now) {
      if (current.expiresAt && current.expiresAt > now) return { credentials: current, refreshed: false };
      throw new DomainError("PROVIDER_ERROR", `refreshing the ${row.platform} credentials is failing; next attempt at ${backoffUntil.toISOString()}`, {
        platform: row.platform,
        providerCode: row.last_refresh_error,
        nextAttemptAt: backoffUntil.toISOString(),
      });
    }

    const provider = providerOf(deps, row);
    if (!provider) throw new ConflictError(`${row.platform} is not configured on this Keyplane`);
    const metadata = eventMetadata(systemActor("credential-refresher", tenantId));
    const stream = { tenantId, ...installationStream(installationId), decider: installationDecider, metadata };
    let fresh: ProviderCredentials;
    try {
      fresh = await provider.refresh(current.refreshToken);
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      // The failure is recorded and committed; the caller gets the error after the commit.
      const rejected = error.kind === "rejected";
      const nextAttemptAt = new Date(now.getTime() + backoffMs(row.refresh_failures + 1)).toISOString();
      await decideAndAppend(trx, {
        ...stream,
        command: { type: "RecordRefreshFailure", providerCode: error.providerCode, rejected, nextAttemptAt },
        occurredAt: deps.now(),
      });
      deps.logger.warn(
        { tenantId, installationId, platform: row.platform, providerCode: error.providerCode, rejected },
        rejected ? "refresh rejected: installation needs re-authorization" : "refresh failed; will retry",
      );
      // A transient failure of an early refresh is no reason to fail a reader: the token still lives
      // (as it will for every read during the backoff that has just begun).
      if (!rejected && !force && current.expiresAt && current.expiresAt > now) return { credentials: current, refreshed: false, refreshError: error };
      return { failure: error };
    }
    // A provider that does not rotate keeps the refresh token it had.
    const next = { ...fresh, refreshToken: fresh.refreshToken ?? current.refreshToken };
    const facts = await storeCredentials(trx, deps.keyring, tenantId, installationId, next, now);
    await decideAndAppend(trx, {
      ...stream,
      command: { type: "RecordRefresh", credentials: facts, previousFingerprint: row.credential_fingerprint ?? undefined },
      occurredAt: deps.now(),
    });
    deps.logger.info({ tenantId, installationId, platform: row.platform }, "credentials refreshed");
    return { credentials: next, refreshed: true };
  });
  if ("failure" in outcome) throw outcome.failure;
  return outcome;
}
