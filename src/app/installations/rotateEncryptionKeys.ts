import { eventMetadata, systemActor } from "../../auth/actor.ts";
import { installationDecider, installationStream } from "../../domain/installation/decider.ts";
import { withPlatform, withTenant } from "../../store/db.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { stateAad } from "../oauthStates.ts";
import { readCredentials, storeCredentials } from "./vault.ts";
import { readStreamSecrets, storeStreamSecrets } from "../logStreams/streamSecrets.ts";
import { reencryptTokenSecret } from "../githubTokens/tokenVault.ts";
import { readIdentityTokens, storeIdentityTokens } from "../identities/identityVault.ts";

const BATCH = 100;

/**
 * Re-encrypts every stored secret under the keyring's current key. Each installation is its own
 * transaction (row locked, re-encrypted, installation.credentials_reencrypted recorded), so an
 * interrupted run loses nothing and the next run continues with what is left. Once it reports
 * zero remaining, older keys can leave KEYPLANE_ENCRYPTION_KEYS.
 */
export async function rotateEncryptionKeys(
  deps: Pick<AppDeps, "db" | "keyring" | "now">,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<{ installations: number; oauthStates: number; logStreams: number; githubTokens: number; identities: number }> {
  const current = deps.keyring.currentKeyId;
  const { count } = await withPlatform(deps.db, (trx) =>
    trx
      .selectFrom("installation_secrets")
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .where("key_id", "<>", current)
      .executeTakeFirstOrThrow(),
  );
  const total = Number(count);
  let done = 0;
  onProgress(0, total);
  for (;;) {
    const batch = await withPlatform(deps.db, (trx) =>
      trx
        .selectFrom("installation_secrets")
        .select(["tenant_id", "installation_id"])
        .where("key_id", "<>", current)
        .orderBy("tenant_id")
        .orderBy("installation_id")
        .limit(BATCH)
        .execute(),
    );
    if (batch.length === 0) break;
    for (const { tenant_id: tenantId, installation_id: installationId } of batch) {
      await withTenant(deps.db, tenantId, async (trx) => {
        const stored = await readCredentials(trx, deps.keyring, tenantId, installationId, true).catch((error: Error) => {
          throw new Error(`installation ${installationId} of tenant ${tenantId}: ${error.message}`);
        });
        if (!stored || stored.keyIds.every((k) => k === current)) return; // done meanwhile (a refresh, or another run)
        const now = deps.now();
        await storeCredentials(trx, deps.keyring, tenantId, installationId, stored.credentials, now);
        await decideAndAppend(trx, {
          tenantId,
          ...installationStream(installationId),
          decider: installationDecider,
          command: { type: "ReencryptCredentials", fromKeyIds: stored.keyIds, toKeyId: current },
          metadata: eventMetadata(systemActor("keys-rotate", tenantId)),
          occurredAt: now,
        });
      });
      onProgress(++done, Math.max(total, done));
    }
  }
  // Pending OAuth states live ten minutes; their PKCE verifiers move too, without events (no installation yet).
  // Found across tenants, then each locked by its key (on Citus a lock is taken on one shard at a time).
  const oauthStates = await withPlatform(deps.db, async (trx) => {
    const pending = await trx.selectFrom("oauth_states").select(["tenant_id", "request_id"]).where("key_id", "<>", current).execute();
    for (const { tenant_id, request_id } of pending) {
      const row = await trx
        .selectFrom("oauth_states")
        .select(["tenant_id", "request_id", "code_verifier"])
        .where("tenant_id", "=", tenant_id)
        .where("request_id", "=", request_id)
        .where("key_id", "<>", current)
        .forUpdate()
        .executeTakeFirst();
      if (!row?.code_verifier) continue;
      const verifier = deps.keyring.decrypt(row.code_verifier, stateAad(row.request_id));
      await trx
        .updateTable("oauth_states")
        .set({ code_verifier: deps.keyring.encrypt(verifier, stateAad(row.request_id)), key_id: current })
        .where("tenant_id", "=", row.tenant_id)
        .where("request_id", "=", row.request_id)
        .execute();
    }
    return pending.length;
  });
  return {
    installations: done,
    oauthStates,
    logStreams: await rotateLogStreamSecrets(deps),
    githubTokens: await rotateGitHubTokenSecrets(deps),
    identities: await rotateIdentitySecrets(deps),
  };
}

/** Log streams' destinations (URL and secret), each in its tenant's transaction, the row locked; no event (nothing about the stream changed). */
async function rotateLogStreamSecrets(deps: Pick<AppDeps, "db" | "keyring" | "now">): Promise<number> {
  const current = deps.keyring.currentKeyId;
  const pending = await withPlatform(deps.db, (trx) =>
    trx.selectFrom("log_stream_secrets").select(["tenant_id", "log_stream_id"]).where("key_id", "<>", current).execute(),
  );
  for (const { tenant_id: tenantId, log_stream_id: logStreamId } of pending) {
    await withTenant(deps.db, tenantId, async (trx) => {
      const secrets = await readStreamSecrets(trx, deps.keyring, tenantId, logStreamId, true);
      if (secrets) await storeStreamSecrets(trx, deps.keyring, tenantId, logStreamId, secrets, deps.now());
    });
  }
  return pending.length;
}

/** Issued GitHub tokens kept for revocation (an hour at most, but revoking one must not fail once the old key is gone). */
async function rotateGitHubTokenSecrets(deps: Pick<AppDeps, "db" | "keyring">): Promise<number> {
  const current = deps.keyring.currentKeyId;
  const pending = await withPlatform(deps.db, (trx) =>
    trx.selectFrom("github_token_secrets").select(["tenant_id", "fingerprint"]).where("key_id", "<>", current).execute(),
  );
  for (const { tenant_id: tenantId, fingerprint } of pending) {
    await withTenant(deps.db, tenantId, (trx) => reencryptTokenSecret(trx, deps.keyring, tenantId, fingerprint));
  }
  return pending.length;
}

/** Linked identities' user tokens, each in its tenant's transaction, the row locked; no event (the tokens did not change). */
async function rotateIdentitySecrets(deps: Pick<AppDeps, "db" | "keyring" | "now">): Promise<number> {
  const current = deps.keyring.currentKeyId;
  const pending = await withPlatform(deps.db, (trx) =>
    trx.selectFrom("identity_secrets").select(["tenant_id", "identity_id"]).where("key_id", "<>", current).execute(),
  );
  for (const { tenant_id: tenantId, identity_id: identityId } of pending) {
    await withTenant(deps.db, tenantId, async (trx) => {
      const tokens = await readIdentityTokens(trx, deps.keyring, tenantId, identityId, true);
      if (tokens) await storeIdentityTokens(trx, deps.keyring, tenantId, identityId, tokens, deps.now());
    });
  }
  return pending.length;
}
