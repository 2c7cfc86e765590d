import { writeFileSync } from "node:fs";
import path from "node:path";
import { systemActor } from "../auth/actor.ts";
import { listAllTenants } from "../store/queries/tenantQueries.ts";
import { issueAccessToken } from "./sessions/issueAccessToken.ts";
import type { AppDeps } from "./deps.ts";
import { createTenant } from "./tenants.ts";

export const DEFAULT_TENANT = "default";
const ADMIN_TOKEN_TTL_SECONDS = 7 * 86400;

/**
 * First start of an empty database: a `default` tenant and an admin token (valid for 7 days) written to
 * <data dir>/admin-token (0600), so a new user can send a first query at once.
 */
export async function bootstrapDefaultTenant(deps: Pick<AppDeps, "db" | "config" | "minter" | "now" | "logger">): Promise<string | null> {
  if ((await listAllTenants(deps.db)).length > 0) return null;
  const actor = systemActor("keyplane:bootstrap");
  await createTenant(deps, actor, { id: DEFAULT_TENANT, name: "Default", tier: "free" });
  const issued = await issueAccessToken(deps, actor, {
    tenantId: DEFAULT_TENANT,
    subject: "bootstrap-admin",
    kind: "user",
    roles: ["admin"],
    ttlSeconds: ADMIN_TOKEN_TTL_SECONDS,
    issuedVia: "bootstrap",
  });
  const file = path.resolve(deps.config.dataDir, "admin-token");
  writeFileSync(file, issued.accessToken + "\n", { mode: 0o600 });
  deps.logger.info({ file, tenantId: DEFAULT_TENANT, expiresAt: issued.expiresAt }, "created tenant 'default'; wrote its admin token");
  return file;
}
