import { eventMetadata, systemActor } from "../../auth/actor.ts";
import { identityDecider, identityStream } from "../../domain/identity/decider.ts";
import { withPlatform, withTenant } from "../../store/db.ts";
import { identitiesExpiringBefore } from "../../store/queries/identityQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { lockIdentity } from "./identityTokens.ts";

/** How long before its refresh token ends a principal is told to link again. */
export const EXPIRY_NOTICE_MS = 24 * 3600_000;
const BATCH = 100;

/**
 * Tells each principal whose identity's refresh token ends within a day, once per refresh token
 * (identity.expiring, on its subscription and the tenant's log streams). An identity in use is
 * refreshed long before (each refresh brings a new six-month refresh token): one that gets this
 * notice has not been used for months. Returns how many were told.
 */
export async function noticeExpiringIdentities(deps: Pick<AppDeps, "db" | "logger" | "now">): Promise<number> {
  const due = await withPlatform(deps.db, (trx) => identitiesExpiringBefore(trx, new Date(deps.now().getTime() + EXPIRY_NOTICE_MS), BATCH));
  let told = 0;
  for (const { tenant_id: tenantId, identity_id: identityId } of due) {
    const { decided } = await withTenant(deps.db, tenantId, async (trx) => {
      await lockIdentity(trx, tenantId, identityId);
      return decideAndAppend(trx, {
        tenantId,
        ...identityStream(identityId),
        decider: identityDecider,
        command: { type: "NoticeIdentityExpiring", identityId, reason: "refresh_token_expiring" },
        metadata: eventMetadata(systemActor("identity-expiry", tenantId)),
        occurredAt: deps.now(),
      });
    });
    told += decided.length;
  }
  if (told) deps.logger.info({ told }, "identities near the end of their refresh token were told to link again");
  return told;
}
