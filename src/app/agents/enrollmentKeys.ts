import { createHash, randomBytes, randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { enrollmentKeyDecider, enrollmentKeyStream } from "../../domain/enrollmentKey/decider.ts";
import { keyRefusal } from "../../domain/enrollmentKey/keyRefusal.ts";
import { agentTags } from "../../domain/agent/tags.ts";
import { parseInput } from "../../domain/validation.ts";
import { BadInputError, NotFoundError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import { findAgentState } from "../../store/queries/agentQueries.ts";
import { enrollmentKeyStateOf, listEnrollmentKeys } from "../../store/queries/enrollmentKeyQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";

// Enrollment keys (Headscale's pre-auth keys): `kpe_<prefix>_<secret>`, shown once. Keyplane keeps
// the prefix (to find the key) and a SHA-256 of the whole key (to check it), nothing else.

export const KEY_FORMAT = /^kpe_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$/;
export const hashEnrollmentKey = (key: string) => createHash("sha256").update(key).digest("hex");

export const CreateEnrollmentKeyInput = z.object({
  description: z.string().trim().max(500).default(""),
  reusable: z.boolean().default(false),
  ephemeral: z.boolean().default(false),
  expiresIn: z
    .number()
    .int()
    .min(60, "at least 60 seconds")
    .max(90 * 86400, "at most 90 days")
    .default(3600),
  maxUses: z.number().int().positive().max(100_000).optional(),
  tags: agentTags.default([]),
  agentId: z.string().uuid("not an agent id").optional(),
});

export interface CreatedEnrollmentKey {
  id: string;
  key: string;
  prefix: string;
  expiresAt: Date;
}

export async function createEnrollmentKey(
  deps: Pick<AppDeps, "db" | "now">,
  actor: Actor,
  raw: z.input<typeof CreateEnrollmentKeyInput>,
  request: RequestMeta = {},
): Promise<CreatedEnrollmentKey> {
  const input = parseInput(CreateEnrollmentKeyInput, raw);
  if (input.maxUses !== undefined && !input.reusable && input.maxUses !== 1)
    throw new BadInputError("maxUses: a single-use key is used once; set reusable for more", "maxUses");
  const keyId = randomUUID();
  const prefix = randomBytes(8).toString("hex").slice(0, 10);
  const key = `kpe_${prefix}_${randomBytes(32).toString("base64url")}`;
  const now = deps.now();
  const expiresAt = new Date(now.getTime() + input.expiresIn * 1000);
  await withTenant(deps.db, actor.tenantId, async (trx) => {
    if (input.agentId) {
      const agent = await findAgentState(trx, actor.tenantId, input.agentId);
      if (!agent || agent.status === "deleted") throw new NotFoundError("agent");
    }
    await decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...enrollmentKeyStream(keyId),
      decider: enrollmentKeyDecider,
      command: {
        type: "CreateEnrollmentKey",
        data: {
          keyId,
          prefix,
          keyHash: hashEnrollmentKey(key),
          description: input.description,
          reusable: input.reusable,
          ephemeral: input.ephemeral,
          maxUses: input.reusable ? (input.maxUses ?? null) : 1,
          tags: [...new Set(input.tags)].sort(),
          agentId: input.agentId ?? null,
          expiresAt: expiresAt.toISOString(),
        },
      },
      metadata: eventMetadata(actor, request),
      occurredAt: now,
    });
  });
  return { id: keyId, key, prefix, expiresAt };
}

const KeyId = z.object({ id: z.string().uuid("not an enrollment key id") });

export async function revokeEnrollmentKey(deps: Pick<AppDeps, "db" | "now">, actor: Actor, rawId: unknown, request: RequestMeta = {}) {
  const { id } = parseInput(KeyId, { id: rawId });
  await withTenant(deps.db, actor.tenantId, (trx) =>
    decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...enrollmentKeyStream(id),
      decider: enrollmentKeyDecider,
      command: { type: "RevokeEnrollmentKey" },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    }),
  );
  return id;
}

/** Removes expired, revoked and used-up keys from the list (their events stay). Returns how many. */
export async function pruneEnrollmentKeys(deps: Pick<AppDeps, "db" | "now">, actor: Actor, request: RequestMeta = {}): Promise<number> {
  const at = deps.now();
  const now = at.toISOString();
  return withTenant(deps.db, actor.tenantId, async (trx) => {
    const keys = await listEnrollmentKeys(trx, actor.tenantId);
    let pruned = 0;
    for (const k of keys) {
      const reason = keyRefusal(enrollmentKeyStateOf(k), now);
      if (!reason) continue;
      await decideAndAppend(trx, {
        tenantId: actor.tenantId,
        ...enrollmentKeyStream(k.key_id),
        decider: enrollmentKeyDecider,
        command: { type: "PruneEnrollmentKey", reason },
        metadata: eventMetadata(actor, request),
        occurredAt: at,
      });
      pruned++;
    }
    return pruned;
  });
}
