import { z } from "zod";
import { BadInputError, ConflictError, NotFoundError } from "../../errors.ts";
import { parseInput } from "../validation.ts";
import {
  TenantCreated,
  TenantLegalHoldReleased,
  TenantLegalHoldSet,
  TenantResumed,
  TenantRetentionSet,
  TenantSuspended,
  TenantTierChanged,
  tierSchema,
  type TenantEvent,
} from "./events.ts";
import type { TenantState } from "./evolve.ts";

/** Tenant ids are slugs: they appear in URLs, logs and token claims. */
export const tenantIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{1,62}$/, "must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit");

export const CreateTenantInput = z.object({
  id: tenantIdSchema,
  name: z.string().trim().min(1, "must not be empty").max(200),
  tier: tierSchema.default("free"),
});
export type CreateTenantCommand = { type: "CreateTenant"; input: z.input<typeof CreateTenantInput> };

export const ChangeTenantTierInput = z.object({ tier: tierSchema });
export type ChangeTenantTierCommand = { type: "ChangeTenantTier"; input: z.input<typeof ChangeTenantTierInput> };

/** Why, in words the tenant's people will read when they are refused. */
export const SuspendTenantInput = z.object({ reason: z.string().trim().min(1, "must not be empty").max(500) });
export type SuspendTenantCommand = { type: "SuspendTenant"; input: z.input<typeof SuspendTenantInput> };
export type ResumeTenantCommand = { type: "ResumeTenant" };

/** Days to keep the log (at most what the tier allows); null: as long as the tier allows. */
export const SetRetentionInput = z.object({ days: z.number().int().min(1, "must be at least 1 day").max(36_500).nullable() });
export type SetRetentionCommand = {
  type: "SetRetentionPolicy";
  input: z.input<typeof SetRetentionInput>;
  /** The tenant's tier's bound, from configuration (AUDIT_RETENTION_DAYS); null: unlimited. */
  tierMaxDays: number | null;
};
export const SetLegalHoldInput = z.object({ reason: z.string().trim().min(1, "must not be empty").max(500) });
export type SetLegalHoldCommand = { type: "SetLegalHold"; input: z.input<typeof SetLegalHoldInput> };
export type ReleaseLegalHoldCommand = { type: "ReleaseLegalHold" };

export type TenantCommand =
  | CreateTenantCommand
  | ChangeTenantTierCommand
  | SuspendTenantCommand
  | ResumeTenantCommand
  | SetRetentionCommand
  | SetLegalHoldCommand
  | ReleaseLegalHoldCommand;

export function decideTenant(command: TenantCommand, state: TenantState): TenantEvent[] {
  switch (command.type) {
    case "ChangeTenantTier": {
      const input = parseInput(ChangeTenantTierInput, command.input);
      if (!state.exists) throw new NotFoundError("tenant");
      // Already on that tier: nothing to record.
      if (state.tier === input.tier) return [];
      return [TenantTierChanged({ tenantId: state.id, from: state.tier, to: input.tier })];
    }
    case "SuspendTenant": {
      const input = parseInput(SuspendTenantInput, command.input);
      if (!state.exists) throw new NotFoundError("tenant");
      // Already suspended: the first reason stands, nothing to record.
      if (state.status === "suspended") return [];
      return [TenantSuspended({ tenantId: state.id, reason: input.reason })];
    }
    case "ResumeTenant": {
      if (!state.exists) throw new NotFoundError("tenant");
      if (state.status === "active") return [];
      return [TenantResumed({ tenantId: state.id })];
    }
    case "SetRetentionPolicy": {
      const { days } = parseInput(SetRetentionInput, command.input);
      if (!state.exists) throw new NotFoundError("tenant");
      if (days !== null && command.tierMaxDays !== null && days > command.tierMaxDays) {
        throw new BadInputError(`days: the ${state.tier} tier keeps the log at most ${command.tierMaxDays} days`, "days");
      }
      if (days === state.retentionDays) return [];
      return [TenantRetentionSet({ tenantId: state.id, days, previousDays: state.retentionDays, tierMaxDays: command.tierMaxDays })];
    }
    case "SetLegalHold": {
      const input = parseInput(SetLegalHoldInput, command.input);
      if (!state.exists) throw new NotFoundError("tenant");
      // Already held: the first reason stands until released.
      if (state.legalHold !== null) return [];
      return [TenantLegalHoldSet({ tenantId: state.id, reason: input.reason })];
    }
    case "ReleaseLegalHold": {
      if (!state.exists) throw new NotFoundError("tenant");
      if (state.legalHold === null) return [];
      return [TenantLegalHoldReleased({ tenantId: state.id })];
    }
    case "CreateTenant": {
      const input = parseInput(CreateTenantInput, command.input);
      if (state.exists) throw new ConflictError(`tenant ${input.id} already exists`);
      return [TenantCreated({ tenantId: input.id, name: input.name, tier: input.tier })];
    }
  }
}
