import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

export const tierSchema = z.enum(["free", "pro", "enterprise"]);
export type Tier = z.infer<typeof tierSchema>;

export const TenantCreated = defineEvent(
  "tenant.created",
  1,
  z.object({ tenantId: z.string(), name: z.string(), tier: tierSchema }),
);

export const tenantEvents = [TenantCreated] as const;
export type TenantEvent = EventOf<typeof TenantCreated>;
