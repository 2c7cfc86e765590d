import type { Projection } from "./projection.ts";
import { statementBuilder as db } from "./projectionSql.ts";

type Data = Record<string, any>;

// One owner per GitHub installation across tenants: the primary key of github_installation_owners
// (a lookup table, since a distributed installations table cannot hold a unique key without
// tenant_id). A claim by a second tenant fails here with a unique violation, which the install
// callback reports as "connected to another tenant".
export const githubOwnersProjection: Projection = {
  name: "github-owners",
  tables: ["github_installation_owners"],
  handles: new Set(["installation.created", "installation.revoked"]),
  project(event) {
    const d = event.data as Data;
    if (event.type === "installation.created") {
      if (d.platform !== "github") return [];
      return [db.insertInto("github_installation_owners").values({ external_id: d.externalId, tenant_id: event.tenantId, installation_id: d.installationId })];
    }
    return [db.deleteFrom("github_installation_owners").where("tenant_id", "=", event.tenantId).where("installation_id", "=", d.installationId)];
  },
  // A revocation in one tenant and a claim in another replay in either order tenant by tenant; the
  // rebuilt installations say who owns what now. Read, then written in batches (on Citus an
  // INSERT … SELECT into a reference table goes through COPY, which row-level security refuses).
  async deriveAfterReplay(trx) {
    const owners = await trx
      .selectFrom("installations")
      .select(["external_id", "tenant_id", "installation_id"])
      .where("platform", "=", "github")
      .where("status", "<>", "revoked")
      .execute();
    for (let i = 0; i < owners.length; i += 1000)
      await trx
        .insertInto("github_installation_owners")
        .values(owners.slice(i, i + 1000))
        .execute();
  },
};
