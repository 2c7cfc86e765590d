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

export const tenantEvents = [TenantCreated, TenantTierChanged, TenantSuspended, TenantResumed] as const;
export type TenantEvent = EventOf<typeof TenantCreated> | EventOf<typeof TenantTierChanged> | EventOf<typeof TenantSuspended> | EventOf<typeof TenantResumed>;
