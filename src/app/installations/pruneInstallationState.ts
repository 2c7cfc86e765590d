import { withPlatform } from "../../store/db.ts";
import type { AppDeps } from "../deps.ts";

/** How long a webhook delivery id is remembered: GitHub redelivers on request for up to a few days. */
const DELIVERY_MEMORY_MS = 30 * 86400_000;

/** Drops OAuth states past their expiry, webhook delivery ids older than the memory and webhook body hashes past their window. */
export async function pruneInstallationState(deps: Pick<AppDeps, "db" | "now">): Promise<{ oauthStates: number; deliveries: number; payloads: number }> {
  const now = deps.now();
  return withPlatform(deps.db, async (trx) => {
    const states = await trx.deleteFrom("oauth_states").where("expires_at", "<", now).executeTakeFirst();
    await trx.deleteFrom("oauth_state_hashes").where("expires_at", "<", now).execute();
    const deliveries = await trx
      .deleteFrom("webhook_deliveries")
      .where("received_at", "<", new Date(now.getTime() - DELIVERY_MEMORY_MS))
      .executeTakeFirst();
    const payloads = await trx.deleteFrom("webhook_payloads").where("expires_at", "<=", now).executeTakeFirst();
    return { oauthStates: Number(states.numDeletedRows), deliveries: Number(deliveries.numDeletedRows), payloads: Number(payloads.numDeletedRows) };
  });
}
