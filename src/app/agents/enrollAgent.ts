import { randomUUID, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { eventMetadata, systemActor, type RequestMeta } from "../../auth/actor.ts";
import { agentDecider, agentStream } from "../../domain/agent/decider.ts";
import { enrollmentKeyDecider, enrollmentKeyStream } from "../../domain/enrollmentKey/decider.ts";
import { INVALID_ENROLLMENT_KEY, keyRefusal } from "../../domain/enrollmentKey/keyRefusal.ts";
import { parseInput } from "../../domain/validation.ts";
import { ConflictError, NotFoundError, TenantSuspendedError, UnauthenticatedError } from "../../errors.ts";
import { rateLimitedError } from "../../limits/rateLimits.ts";
import { withPlatform, withTenant } from "../../store/db.ts";
import { enrollmentKeyStateOf, findEnrollmentKeyByPrefix } from "../../store/queries/enrollmentKeyQueries.ts";
import { issueAccessToken } from "../sessions/issueAccessToken.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { hashEnrollmentKey, KEY_FORMAT } from "./enrollmentKeys.ts";
import { checkAgentQuota, QuotaExceededError } from "./quotas.ts";

/** Rounds of a contended enrollment (machines racing on one reusable key) before it is refused. */
const MAX_ENROLL_ATTEMPTS = 10;

const fact = z.string().trim().min(1).max(200);
export const EnrollAgentInput = z.object({ key: z.string().max(200), hostname: fact, os: fact, arch: fact, agentVersion: fact });

export interface EnrolledAgent {
  agentId: string;
  tenantId: string;
  accessToken: string;
  refreshToken: string;
  expiresAt: Date;
  refreshExpiresAt: Date;
}

/**
 * A machine joins with an enrollment key: the key is checked (prefix to find it, constant-time hash
 * comparison, then state), its use is appended to the key's stream with a version check (of two
 * agents racing on a single-use key exactly one enrolls), the agent is created or bound, and the
 * agent gets a refreshable credential: subject agent:<id>, role service narrowed by scope agent.
 * Every refusal looks the same to the caller; the audit log says which check failed.
 *
 * A key that creates an agent (one not bound to an existing agent, ephemeral ones included) counts
 * against the tenant's agent-create quota exactly as createAgent does, checked first in the same
 * transaction: over the quota the answer is createAgent's RATE_LIMITED with retryAfter and an
 * access.denied event, and the transaction rolls back, so the key's use is not spent. A key bound
 * to an existing agent creates nothing and counts against no quota.
 */
export async function enrollAgent(
  deps: Pick<AppDeps, "db" | "config" | "minter" | "security" | "now" | "limits">,
  raw: z.input<typeof EnrollAgentInput>,
  request: RequestMeta = {},
): Promise<EnrolledAgent> {
  const input = parseInput(EnrollAgentInput, raw);
  const match = KEY_FORMAT.exec(input.key);
  // Enrollment is public. Its refused keys are counted per source address (policy "enroll", in the
  // shared limit store; and, as refused credentials, "auth-failures"): past the limit a refused key
  // is answered RATE_LIMITED instead. A valid key is never refused for them: machines behind one
  // NAT enroll while someone next to them guesses. Valid keys are bounded by their own uses and
  // the tenant's agent-create quota.
  const refuse = async (reason: string, tenantId: string | null, prefix: string | null): Promise<never> => {
    await deps.security.authFailed({
      tenantId,
      actor: null,
      reason: `enrollment-key-${reason}`,
      resource: "agent",
      action: "enroll",
      details: { keyPrefix: prefix },
      request,
    });
    const limited = (await deps.limits.checkAddress("enroll", request)).refused ?? (await deps.limits.refusedCredential(request))?.refused;
    if (limited) throw rateLimitedError(limited);
    throw new UnauthenticatedError(INVALID_ENROLLMENT_KEY);
  };
  if (!match) return refuse("malformed", null, null);
  const prefix = match[1]!;
  const found = await withPlatform(deps.db, (trx) => findEnrollmentKeyByPrefix(trx, prefix));
  if (!found) return refuse("unknown", null, prefix);
  if (!timingSafeEqual(Buffer.from(hashEnrollmentKey(input.key), "hex"), Buffer.from(found.key_hash, "hex"))) return refuse("unknown", found.tenant_id, prefix);
  const now = deps.now();
  const refusal = keyRefusal(enrollmentKeyStateOf(found), now.toISOString());
  if (refusal) return refuse(refusal, found.tenant_id, prefix);
  if (found.tenant_status === "suspended") {
    await deps.security.authFailed({
      tenantId: found.tenant_id,
      actor: null,
      reason: "tenant-suspended",
      resource: "agent",
      action: "enroll",
      details: { keyPrefix: prefix },
      request,
    });
    throw new TenantSuspendedError();
  }

  const tenantId = found.tenant_id;
  const agentId = found.agent_id ?? randomUUID();
  const actor = systemActor(`enrollment-key:${prefix}`, tenantId);
  const metadata = eventMetadata(actor, request);
  const meta = { tenantId, timestamp: now.toISOString(), correlationId: request.correlationId ?? request.requestId };
  const enroll = () =>
    withTenant(deps.db, tenantId, async (trx) => {
      if (!found.agent_id) await checkAgentQuota(trx, tenantId, "agent-create", now, deps.config.limits.agentQuotas);
      // The key's stream version decides the race: a second use of a single-use key conflicts here.
      await decideAndAppend(trx, {
        tenantId,
        ...enrollmentKeyStream(found.key_id),
        decider: enrollmentKeyDecider,
        command: { type: "UseEnrollmentKey", agentId, now: now.toISOString() },
        metadata,
        occurredAt: now,
      });
      if (!found.agent_id) {
        await decideAndAppend(trx, {
          tenantId,
          ...agentStream(agentId),
          decider: agentDecider,
          command: { type: "CreateAgent", agentId, name: input.hostname, agentType: "enrolled", config: {}, tags: [], ephemeral: found.ephemeral, meta },
          metadata,
          occurredAt: now,
        });
      }
      await decideAndAppend(trx, {
        tenantId,
        ...agentStream(agentId),
        decider: agentDecider,
        command: {
          type: "EnrollAgent",
          keyId: found.key_id,
          keyPrefix: prefix,
          tags: found.tags,
          host: { hostname: input.hostname, os: input.os, arch: input.arch, agentVersion: input.agentVersion },
          meta,
        },
        metadata,
        occurredAt: now,
      });
    });
  try {
    // A concurrent append to the key's or the agent's stream (another machine on a reusable key, the
    // bound agent's heartbeat) is decided again on the new state: a key with uses left enrolls, a
    // used-up one is refused by the decider. Each round one of the racers wins, so this ends.
    for (let attempt = 1; ; attempt++) {
      try {
        await enroll();
        break;
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= MAX_ENROLL_ATTEMPTS) throw error;
      }
    }
  } catch (error) {
    if (error instanceof QuotaExceededError) {
      await deps.security.accessDenied({
        tenantId,
        actor,
        level: "info",
        reason: `quota:${error.quota}`,
        resource: "agent",
        action: error.quota,
        details: { limit: error.limit, keyPrefix: prefix },
        request,
      });
      throw error;
    }
    if (error instanceof ConflictError || error instanceof UnauthenticatedError) return refuse("used-up", tenantId, prefix);
    if (error instanceof NotFoundError) return refuse("agent-deleted", tenantId, prefix);
    throw error;
  }
  const issued = await issueAccessToken(
    deps,
    actor,
    { tenantId, subject: `agent:${agentId}`, kind: "agent", roles: ["service"], scopes: ["agent"], refreshable: true, issuedVia: "enrollment" },
    request,
  );
  return {
    agentId,
    tenantId,
    accessToken: issued.accessToken,
    refreshToken: issued.refreshToken!,
    expiresAt: issued.expiresAt,
    refreshExpiresAt: issued.refreshExpiresAt!,
  };
}
