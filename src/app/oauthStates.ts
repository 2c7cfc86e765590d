import { createHash, randomBytes } from "node:crypto";
import type { Selectable } from "kysely";
import { eventMetadata, type Actor, type RequestMeta } from "../auth/actor.ts";
import { BadInputError, TenantSuspendedError } from "../errors.ts";
import type { Platform } from "../providers/provider.ts";
import { withPlatform, type Tx } from "../store/db.ts";
import type { OAuthStatesTable } from "../store/schema.ts";
import type { AppDeps } from "./deps.ts";

// The single-use OAuth states of installs and identity links: only the state's SHA-256 is stored (with
// the encrypted PKCE verifier), and the callback consumes it exactly once.

export const hashState = (state: string) => createHash("sha256").update(state).digest("hex");
export const stateAad = (requestId: string) => `oauth_state:${requestId}:code_verifier`;

export type ConsumedState = Selectable<OAuthStatesTable> & { tenant_status: string | null };

/**
 * Marks the state consumed and returns its row (with the tenant's status), or tells a replay (a state
 * consumed before: its tenant) from an unknown one. Of two callbacks racing with one state, one marks
 * it consumed; the other finds it marked.
 */
export async function consumeOAuthState(
  deps: Pick<AppDeps, "db" | "now">,
  state: string,
): Promise<ConsumedState | { replayOf: { tenant_id: string } | undefined }> {
  const stateHash = hashState(state);
  return withPlatform(deps.db, async (trx) => {
    const known = await trx.selectFrom("oauth_state_hashes").select(["tenant_id", "request_id"]).where("state_hash", "=", stateHash).executeTakeFirst();
    if (!known) return { replayOf: undefined };
    const row = await trx
      .selectFrom("oauth_states")
      .selectAll()
      .where("tenant_id", "=", known.tenant_id)
      .where("request_id", "=", known.request_id)
      .where("consumed_at", "is", null)
      .forUpdate()
      .executeTakeFirst();
    // A consumed state keeps only what tells a replay apart: the verifier goes with the first use.
    if (!row) return { replayOf: known };
    await trx
      .updateTable("oauth_states")
      .set({ consumed_at: deps.now(), code_verifier: null, key_id: null })
      .where("tenant_id", "=", row.tenant_id)
      .where("request_id", "=", row.request_id)
      .execute();
    // A tenant suspended since the flow started gets nothing. (Its own statement: Citus runs no FOR
    // UPDATE beside a subquery.)
    const tenant = await trx.selectFrom("tenants").select("status").where("tenant_id", "=", row.tenant_id).executeTakeFirst();
    return { ...row, tenant_status: tenant?.status ?? null };
  });
}

export type OAuthPurpose = "install" | "link";

/**
 * A new single-use state for `purpose`, bound to the tenant and the actor, with the PKCE verifier
 * (when there is one) encrypted beside it; only the state's hash is stored, in the tenant's row and
 * in the lookup the callback finds it by. Returns the state to put in the authorization URL.
 */
export async function createOAuthState(
  trx: Tx,
  deps: Pick<AppDeps, "keyring">,
  args: { actor: Actor; requestId: string; platform: Platform; app: string | null; purpose: OAuthPurpose; verifier?: string; now: Date; expiresAt: Date },
): Promise<string> {
  const { actor, requestId, verifier, expiresAt } = args;
  const state = randomBytes(32).toString("base64url");
  await trx
    .insertInto("oauth_states")
    .values({
      tenant_id: actor.tenantId,
      request_id: requestId,
      state_hash: hashState(state),
      platform: args.platform,
      app: args.app,
      purpose: args.purpose,
      actor: JSON.stringify(eventMetadata(actor).actor),
      key_id: verifier ? deps.keyring.currentKeyId : null,
      code_verifier: verifier ? deps.keyring.encrypt(verifier, stateAad(requestId)) : null,
      created_at: args.now,
      expires_at: expiresAt,
    })
    .execute();
  await trx
    .insertInto("oauth_state_hashes")
    .values({ state_hash: hashState(state), tenant_id: actor.tenantId, request_id: requestId, expires_at: expiresAt })
    .execute();
  return state;
}

/** Records a refused callback (auth.failed) and throws what the caller answers with. */
export type Refusal = (reason: string, tenantId: string | null, message: string, answer?: Error) => Promise<never>;

/** A refusal recorded as an auth.failed security event of `resource` and `action`, answered BAD_USER_INPUT on `state` unless told otherwise. */
export function refusalOf(deps: Pick<AppDeps, "security">, request: RequestMeta, what: { resource: string; action: string; platform: Platform }): Refusal {
  return async (reason, tenantId, message, answer = new BadInputError(message, "state")) => {
    await deps.security.authFailed({
      tenantId,
      actor: null,
      reason,
      resource: what.resource,
      action: what.action,
      details: { platform: what.platform },
      request,
    });
    throw answer;
  };
}

/**
 * The callback's state, consumed exactly once and accepted only for `purpose` and `platform`, before
 * it expired, for a tenant that is not suspended; every other case is refused (`refuse`) and stores
 * nothing but the security event. `again` says what to start again ("the installation", "linking").
 */
export async function acceptOAuthState(
  deps: Pick<AppDeps, "db" | "now">,
  state: string | null,
  expect: { purpose: OAuthPurpose; platform: Platform; again: string },
  refuse: Refusal,
): Promise<ConsumedState> {
  if (!state) return refuse("oauth-state-missing", null, "state: missing from the callback");
  const consumed = await consumeOAuthState(deps, state);
  if ("replayOf" in consumed) {
    if (consumed.replayOf) return refuse("oauth-state-replayed", consumed.replayOf.tenant_id, `state: already used; start ${expect.again} again`);
    return refuse("oauth-state-unknown", null, `state: unknown; start ${expect.again} again`);
  }
  if (consumed.platform !== expect.platform) return refuse("oauth-state-platform-mismatch", consumed.tenant_id, "state: issued for another platform");
  // A state started to link an identity installs nothing, and the other way round.
  if (consumed.purpose !== expect.purpose)
    return refuse(
      "oauth-state-purpose-mismatch",
      consumed.tenant_id,
      `state: issued ${consumed.purpose === "link" ? "to link an identity, not to install" : "to install, not to link an identity"}`,
    );
  if (new Date(consumed.expires_at) <= deps.now()) return refuse("oauth-state-expired", consumed.tenant_id, `state: expired; start ${expect.again} again`);
  if (consumed.tenant_status === "suspended") return refuse("tenant-suspended", consumed.tenant_id, "", new TenantSuspendedError());
  return consumed;
}
