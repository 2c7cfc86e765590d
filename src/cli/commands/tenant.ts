import { systemActor } from "../../auth/actor.ts";
import { tierSchema, type Tier } from "../../domain/tenant/events.ts";
import { NotFoundError } from "../../errors.ts";
import { asUsage, oneOf, parse } from "../args.ts";
import { UsageError, type Command, type CommandGroup } from "../command.ts";
import { withKeyplane } from "../withKeyplane.ts";

export const tenantGroup: CommandGroup = {
  name: "tenant",
  usage: `  tenant create --id ID --name NAME [--tier free|pro|enterprise]
  tenant list [--json]
  tenant set-tier --id ID --tier free|pro|enterprise
                                          move a tenant to another tier: its rate limits, cost
                                          budget and agent quotas follow from its next request
  tenant suspend --id ID --reason TEXT    refuse every token, session and enrollment key of the
                                          tenant until resumed (its data and log stay)
  tenant resume --id ID
`,
  parse([sub, ...rest]) {
    if (sub === "create") return tenantCreate(rest);
    if (sub === "list") return tenantList(rest);
    if (sub === "set-tier") return tenantSetTier(rest);
    if (sub === "suspend") return tenantSuspension(rest, true);
    if (sub === "resume") return tenantSuspension(rest, false);
    throw new UsageError(sub ? `unknown tenant command: ${sub}` : "tenant needs a command: create, list, set-tier, suspend or resume");
  },
};

function tenantCreate(args: string[]): Command {
  const v = parse(args, { id: { type: "string" }, name: { type: "string" }, tier: { type: "string" } });
  if (!v.id || !v.name) throw new UsageError("tenant create needs --id and --name");
  const tier: Tier = v.tier === undefined ? "free" : oneOf("--tier", v.tier as string, tierSchema.options);
  const input = { id: v.id as string, name: v.name as string, tier };
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { createTenant } = await import("../../app/tenants.ts");
      await asUsage(createTenant(kp.deps, systemActor("cli"), input));
      io.out(`created tenant ${input.id} (${input.name}, ${tier})\n`);
      return 0;
    });
}

function tenantSetTier(args: string[]): Command {
  const v = parse(args, { id: { type: "string" }, tier: { type: "string" } });
  if (!v.id || !v.tier) throw new UsageError("tenant set-tier needs --id and --tier");
  const tier = oneOf("--tier", v.tier as string, tierSchema.options);
  const id = v.id as string;
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { changeTenantTier } = await import("../../app/tenants.ts");
      // The same use case as the changeTenantTier mutation: tenant.tier_changed in the tenant's log.
      const changed = await asUsage(changeTenantTier(kp.deps, systemActor("cli"), id, { tier })).catch((error: unknown) => {
        throw error instanceof NotFoundError ? new Error(`no tenant ${id} (see: keyplane tenant list)`) : error;
      });
      io.out(changed ? `tenant ${id}: ${String(changed.data.from)} -> ${tier}\n` : `tenant ${id} is already on ${tier}\n`);
      return 0;
    });
}

/** The same use cases as the suspendTenant and resumeTenant mutations. */
function tenantSuspension(args: string[], suspend: boolean): Command {
  const v = parse(args, suspend ? { id: { type: "string" }, reason: { type: "string" } } : { id: { type: "string" } });
  if (!v.id || (suspend && !v.reason)) throw new UsageError(suspend ? "tenant suspend needs --id and --reason" : "tenant resume needs --id");
  const id = v.id as string;
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { resumeTenant, suspendTenant } = await import("../../app/tenants.ts");
      const run = suspend ? suspendTenant(kp.deps, systemActor("cli"), id, { reason: v.reason as string }) : resumeTenant(kp.deps, systemActor("cli"), id);
      const tenant = await asUsage(run).catch((error: unknown) => {
        throw error instanceof NotFoundError ? new Error(`no tenant ${id} (see: keyplane tenant list)`) : error;
      });
      io.out(`tenant ${id}: ${tenant.status}\n`);
      return 0;
    });
}

function tenantList(args: string[]): Command {
  const v = parse(args, { json: { type: "boolean" } });
  return (config, io) =>
    withKeyplane(config, async (kp) => {
      const { listAllTenants } = await import("../../store/queries/tenantQueries.ts");
      const rows = await listAllTenants(kp.deps.db);
      if (v.json) {
        const tenants = rows.map((r) => ({ id: r.tenant_id, name: r.name, tier: r.tier, status: r.status, createdAt: new Date(r.created_at).toISOString() }));
        io.out(JSON.stringify(tenants) + "\n");
        return 0;
      }
      const table = [["ID", "TIER", "STATUS", "NAME"], ...rows.map((r) => [r.tenant_id, r.tier, r.status, r.name])];
      const widths = [0, 1, 2].map((i) => Math.max(...table.map((row) => row[i]!.length)));
      io.out(table.map((row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join("  ")).join("\n") + "\n");
      if (!rows.length) io.err("no tenants yet (keyplane tenant create --id ID --name NAME)\n");
      return 0;
    });
}
