import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { eventMetadata, systemActor, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { fingerprint } from "../../crypto/fingerprint.ts";
import { identityDecider, identityStream } from "../../domain/identity/decider.ts";
import { ConflictError, DomainError, NotFoundError } from "../../errors.ts";
import { refreshUserToken, type GitHubUserTokens } from "../../github/userAuthorization.ts";
import { ProviderError } from "../../providers/provider.ts";
import { IdentityTokenIssued } from "../../domain/identity/events.ts";
import { withTenant, type Db, type Tx } from "../../store/db.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import { findIdentity, findPrincipalIdentity, type LinkedIdentityRow } from "../../store/queries/identityQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { backoffMs } from "../installations/refreshCredentials.ts";
import { linkingApp, userEndpoints } from "./githubUserApp.ts";
import { readIdentityTokens, storeIdentityTokens } from "./identityVault.ts";

type Deps = Pick<AppDeps, "db" | "config" | "keyring" | "githubApps" | "logger" | "now">;

/** Serializes refreshes (which spend a single-use refresh token) and appends of one identity across processes. */
export async function lockIdentity(trx: Tx, tenantId: string, identityId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`keyplane:identity:${tenantId}:${identityId}`}, 0))`.execute(trx);
}

// Per Keyplane (its database handle): two Keyplanes in one Node process (tests playing two processes)
// must not share attempts, or the advisory lock is never exercised.
const inFlightByDb = new WeakMap<object, Map<string, Promise<GitHubUserTokens>>>();

/**
 * The identity's user token, refreshed first when it expires within the refresh window (or when
 * forced), under the same discipline as installation credentials: an advisory lock per identity held
 * by the transaction that stores the result, so a second process waits and then finds fresh tokens
 * instead of spending the rotating refresh token again; within one process, callers share one attempt.
 */
export function currentIdentityTokens(deps: Deps, tenantId: string, identityId: string, options: { force?: boolean } = {}): Promise<GitHubUserTokens> {
  const key = `${tenantId}:${identityId}:${options.force ? "force" : ""}`;
  let inFlight = inFlightByDb.get(deps.db);
  if (!inFlight) inFlightByDb.set(deps.db, (inFlight = new Map()));
  const running = inFlight.get(key);
  if (running) return running;
  const attempt = refreshUnderLock(deps, tenantId, identityId, options.force ?? false).finally(() => inFlight!.delete(key));
  inFlight.set(key, attempt);
  return attempt;
}

async function refreshUnderLock(deps: Deps, tenantId: string, identityId: string, force: boolean): Promise<GitHubUserTokens> {
  const outcome = await withTenant(deps.db, tenantId, async (trx): Promise<{ tokens: GitHubUserTokens } | { failure: Error }> => {
    await lockIdentity(trx, tenantId, identityId);
    const row = await findIdentity(trx, tenantId, identityId);
    if (!row) throw new NotFoundError("linked identity");
    if (row.status === "needs_relink") throw needsRelink(row);
    const current = await readIdentityTokens(trx, deps.keyring, tenantId, identityId, true);
    if (!current) throw new ConflictError("the linked identity has no stored token");
    const now = deps.now();
    const due =
      current.accessExpiresAt !== undefined && current.accessExpiresAt.getTime() - now.getTime() < deps.config.installations.refreshWindowSeconds * 1000;
    if ((!due && !force) || !current.refreshToken) {
      if (current.accessExpiresAt && current.accessExpiresAt <= now) throw needsRelink(row);
      return { tokens: current };
    }
    const backoffUntil = row.next_refresh_at ? new Date(row.next_refresh_at) : undefined;
    if (!force && backoffUntil && backoffUntil > now) {
      if (current.accessExpiresAt && current.accessExpiresAt > now) return { tokens: current };
      throw new DomainError("PROVIDER_ERROR", `refreshing the GitHub identity is failing; next attempt at ${backoffUntil.toISOString()}`, {
        platform: "github",
        providerCode: row.last_refresh_error,
        nextAttemptAt: backoffUntil.toISOString(),
      });
    }
    const stream = {
      tenantId,
      ...identityStream(identityId),
      decider: identityDecider,
      metadata: eventMetadata(systemActor("identity-refresher", tenantId)),
    };
    let fresh: GitHubUserTokens;
    try {
      fresh = await refreshUserToken(userEndpoints(deps), linkingApp(deps, row.app), current.refreshToken, deps.now);
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      // The failure is recorded and committed; the caller gets the error after the commit.
      const rejected = error.kind === "rejected";
      await decideAndAppend(trx, {
        ...stream,
        command: {
          type: "RecordIdentityRefreshFailure",
          identityId,
          providerCode: error.providerCode,
          rejected,
          ...(rejected ? {} : { nextAttemptAt: new Date(now.getTime() + backoffMs(row.refresh_failures + 1)).toISOString() }),
        },
        occurredAt: deps.now(),
      });
      deps.logger.warn(
        { tenantId, identityId, providerCode: error.providerCode, rejected },
        rejected ? "identity refresh refused: the principal must link again" : "identity refresh failed; will retry",
      );
      if (!rejected && !force && current.accessExpiresAt && current.accessExpiresAt > now) return { tokens: current };
      return { failure: rejected ? needsRelink(row) : error };
    }
    // GitHub rotates the refresh token; one that did not keeps the one it had.
    const next = { ...fresh, ...(fresh.refreshToken ? {} : { refreshToken: current.refreshToken, refreshExpiresAt: current.refreshExpiresAt }) };
    const tokens = await storeIdentityTokens(trx, deps.keyring, tenantId, identityId, next, now);
    await decideAndAppend(trx, { ...stream, command: { type: "RecordIdentityRefresh", identityId, tokens }, occurredAt: deps.now() });
    deps.logger.info({ tenantId, identityId }, "identity refreshed");
    return { tokens: next };
  });
  if ("failure" in outcome) throw outcome.failure;
  return outcome.tokens;
}

function needsRelink(row: LinkedIdentityRow): ConflictError {
  return new ConflictError(`the GitHub identity ${row.login} needs linking again: GitHub refused its refresh token or it expired`, {
    status: "needs_relink",
    identityId: row.identity_id,
  });
}

export interface HandedOutIdentityToken {
  identityId: string;
  app: string;
  login: string;
  token: string;
  expiresAt?: Date;
}

/**
 * For services and agents: the user token of the caller's own linked identity, refreshed first when
 * near expiry. Every hand-out is an identity.token_issued event with the token's fingerprint,
 * committed before the token leaves. Each hand-out has a stream of its own (as token.issued does), so
 * concurrent readers of one identity neither wait on its lock nor conflict on its version: a token
 * that lives costs one transaction.
 */
export async function identityToken(deps: Deps, actor: Actor, appName?: string | null, request: RequestMeta = {}): Promise<HandedOutIdentityToken> {
  const app = appName ?? deps.githubApps.defaultApp;
  if (!app) throw new NotFoundError(`a linked GitHub identity of ${actor.subject}`);
  const handOut = (target: Db | Tx, row: LinkedIdentityRow, tokens: GitHubUserTokens) =>
    appendEvents(target, {
      tenantId: actor.tenantId,
      streamType: "identity_token",
      streamId: randomUUID(),
      expectedVersion: 0,
      events: [
        IdentityTokenIssued({
          identityId: row.identity_id,
          subject: actor.subject,
          fingerprint: fingerprint(tokens.accessToken),
          ...(tokens.accessExpiresAt ? { expiresAt: tokens.accessExpiresAt.toISOString() } : {}),
        }),
      ],
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
  const step = await withTenant(deps.db, actor.tenantId, async (trx) => {
    const row = await findPrincipalIdentity(trx, actor.tenantId, actor.subject, app);
    if (!row) throw new NotFoundError(`a linked GitHub identity of ${actor.subject} for the app ${app}`);
    if (row.status === "needs_relink") throw needsRelink(row);
    const tokens = await readIdentityTokens(trx, deps.keyring, actor.tenantId, row.identity_id);
    if (!tokens) throw new ConflictError("the linked identity has no stored token");
    if (dueForRefresh(deps, tokens)) return { row, tokens: undefined };
    await handOut(trx, row, tokens);
    return { row, tokens };
  });
  const { row } = step;
  let tokens = step.tokens;
  if (!tokens) {
    // Refreshed under the identity's lock, then recorded on its own once the refresh committed.
    tokens = await currentIdentityTokens(deps, actor.tenantId, row.identity_id);
    await handOut(deps.db, row, tokens);
  }
  return { identityId: row.identity_id, app: row.app, login: row.login, token: tokens.accessToken, expiresAt: tokens.accessExpiresAt };
}

/** The user token ends within the refresh window (CREDENTIAL_REFRESH_WINDOW_SECONDS). */
function dueForRefresh(deps: Pick<AppDeps, "config" | "now">, tokens: GitHubUserTokens): boolean {
  return (
    tokens.accessExpiresAt !== undefined && tokens.accessExpiresAt.getTime() - deps.now().getTime() < deps.config.installations.refreshWindowSeconds * 1000
  );
}

/** The caller's own identity with the app (the default app when none is named), or NOT_FOUND. */
export async function principalIdentity(deps: Pick<AppDeps, "db" | "githubApps">, actor: Actor, appName?: string | null): Promise<LinkedIdentityRow> {
  const app = appName ?? deps.githubApps.defaultApp;
  const row = app ? await withTenant(deps.db, actor.tenantId, (trx) => findPrincipalIdentity(trx, actor.tenantId, actor.subject, app)) : undefined;
  if (!row) throw new NotFoundError(`a linked GitHub identity of ${actor.subject}${app ? ` for the app ${app}` : ""}`);
  return row;
}
