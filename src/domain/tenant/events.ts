import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

export const tierSchema = z.enum(["free", "pro", "enterprise"]);
export type Tier = z.infer<typeof tierSchema>;

export const TenantCreated = defineEvent("tenant.created", 1, z.object({ tenantId: z.string(), name: z.string(), tier: tierSchema }));

/** A platform operator moved the tenant to another tier: its limits change from the next request. */
export const TenantTierChanged = defineEvent("tenant.tier_changed", 1, z.object({ tenantId: z.string(), from: tierSchema, to: tierSchema }));

/** A platform operator suspended the tenant: none of its tokens, sessions or enrollment keys is accepted until resumed. */
export const TenantSuspended = defineEvent("tenant.suspended", 1, z.object({ tenantId: z.string(), reason: z.string() }));

/** A platform operator resumed a suspended tenant: its tokens that have not expired work again. */
export const TenantResumed = defineEvent("tenant.resumed", 1, z.object({ tenantId: z.string() }));

/**
 * How long the tenant's log is kept before its oldest events may be pruned (behind a signed
 * checkpoint): `days`, or null for as long as the tier allows; `tierMaxDays` is the tier's bound when
 * it was set (null: unlimited).
 */
export const TenantRetentionSet = defineEvent(
  "tenant.retention_set",
  1,
  z.object({
    tenantId: z.string(),
    days: z.number().int().positive().nullable(),
    previousDays: z.number().int().positive().nullable(),
    tierMaxDays: z.number().int().positive().nullable(),
  }),
);

/** Nothing of the tenant's log is pruned until the hold is released, whatever its retention says. */
export const TenantLegalHoldSet = defineEvent("tenant.legal_hold_set", 1, z.object({ tenantId: z.string(), reason: z.string() }));
export const TenantLegalHoldReleased = defineEvent("tenant.legal_hold_released", 1, z.object({ tenantId: z.string() }));

export const tenantEvents = [
  TenantCreated,
  TenantTierChanged,
  TenantSuspended,
  TenantResumed,
  TenantRetentionSet,
  TenantLegalHoldSet,
  TenantLegalHoldReleased,
] as const;
export type TenantEvent = EventOf<(typeof tenantEvents)[number]>;
