import { createHash } from "node:crypto";
import type { Selectable } from "kysely";
import { withPlatform } from "../store/db.ts";
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
