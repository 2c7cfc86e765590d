import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// Enrollment keys let a machine join a tenant as an agent. Events hold the key's prefix and hash,
// never the key.

export const EnrollmentKeyCreated = defineEvent(
  "enrollment_key.created",
  1,
  z.object({
    keyId: z.string(),
    prefix: z.string(),
    /** SHA-256 of the whole key: a 256-bit random secret, so the hash reveals nothing usable. */
    keyHash: z.string(),
    description: z.string(),
    reusable: z.boolean(),
    ephemeral: z.boolean(),
    maxUses: z.number().int().positive().nullable(),
    tags: z.array(z.string()),
    agentId: z.string().nullable(),
    expiresAt: z.string(),
  }),
);
export const EnrollmentKeyUsed = defineEvent("enrollment_key.used", 1, z.object({ keyId: z.string(), agentId: z.string(), use: z.number().int().positive() }));
export const EnrollmentKeyRevoked = defineEvent("enrollment_key.revoked", 1, z.object({ keyId: z.string() }));
/** An expired, revoked or used-up key leaves the list; its events stay. */
export const EnrollmentKeyPruned = defineEvent("enrollment_key.pruned", 1, z.object({ keyId: z.string(), reason: z.string() }));

export const enrollmentKeyEvents = [EnrollmentKeyCreated, EnrollmentKeyUsed, EnrollmentKeyRevoked, EnrollmentKeyPruned] as const;
export type EnrollmentKeyEvent = EventOf<(typeof enrollmentKeyEvents)[number]>;
