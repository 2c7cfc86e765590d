import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

export const tierSchema = z.enum(["free", "pro", "enterprise"]);
export type Tier = z.infer<typeof tierSchema>;

export const TenantCreated = defineEvent("tenant.created", 1, z.object({ tenantId: z.string(), name: z.string(), tier: tierSchema }));

/** A platform operator moved the tenant to another tier: its limits change from the next request. */
export const TenantTierChanged = defineEvent("tenant.tier_changed", 1, z.object({ tenantId: z.string(), from: tierSchema, to: tierSchema }));

export const tenantEvents = [TenantCreated, TenantTierChanged] as const;
export type TenantEvent = EventOf<typeof TenantCreated> | EventOf<typeof TenantTierChanged>;
