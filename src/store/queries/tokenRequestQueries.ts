import { sql } from "kysely";
import { jsonArrayFrom, jsonObjectFrom } from "kysely/helpers/postgres";
import type { Tx } from "../db.ts";

export interface TokenRequestTarget {
  app: string;
  /** Installations made before apps had names belong to the default app. */
  defaultApp: string | undefined;
  installationId?: number;
  owner?: string;
}

export interface TokenRequestFacts {
  /** At most two live (not revoked) installations matching the target: two means the target was ambiguous. */
  installations: Array<{ installation_id: string; external_id: string; account_login: string; status: string }>;
  policies: Array<{
    name: string;
    app: string;
    roles: string[];
    subjects: string[];
    agent_tags: string[];
    repositories: string[];
    permissions: Record<string, string>;
  }>;
  /** The requesting agent's tags as they are now; none for a deleted agent or another principal. */
  agentTags: string[];
  /** Which of the candidate fingerprints were revoked (by anyone, in any process). */
  revoked: Set<string>;
}

/**
 * Everything a GitHub token request is decided on, in one statement (one round trip, one shard on
 * Citus: every subquery names the tenant): the target installation, the app's token policies, the
 * requesting agent's tags, and which of the tokens this process could hand out from its cache have
 * been revoked since it cached them.
 */
export async function readTokenRequestFacts(
  trx: Tx,
  tenantId: string,
  target: TokenRequestTarget,
  requester: { agentId?: string; candidateFingerprints: string[] },
): Promise<TokenRequestFacts> {
  const row = await trx
    .selectNoFrom((eb) => [
      jsonArrayFrom(
        eb
          .selectFrom("installations")
          .select(["installation_id", "external_id", "account_login", "status"])
          .where("tenant_id", "=", tenantId)
          .where("platform", "=", "github")
          .where("status", "<>", "revoked")
          .where((w) => (target.app === target.defaultApp ? w.or([w("app", "=", target.app), w("app", "is", null)]) : w("app", "=", target.app)))
          .$if(target.installationId !== undefined, (q) => q.where("external_id", "=", String(target.installationId)))
          .$if(target.installationId === undefined && target.owner !== undefined, (q) =>
            q.where(sql<string>`lower(account_login)`, "=", target.owner!.toLowerCase()),
          )
          .orderBy("installation_id")
          .limit(2),
      ).as("installations"),
      jsonArrayFrom(
        eb
          .selectFrom("token_policies")
          .select(["name", "app", "roles", "subjects", "agent_tags", "repositories", "permissions"])
          .where("tenant_id", "=", tenantId)
          .where("app", "=", target.app)
          .orderBy("name"),
      ).as("policies"),
      requester.agentId === undefined
        ? sql<null>`null`.as("agent")
        : jsonObjectFrom(
            eb.selectFrom("agents").select("tags").where("tenant_id", "=", tenantId).where("agent_id", "=", requester.agentId).where("status", "<>", "deleted"),
          ).as("agent"),
      eb
        .selectFrom("github_tokens")
        .select(sql<string[]>`coalesce(array_agg(distinct fingerprint), '{}')`.as("fingerprints"))
        .where("tenant_id", "=", tenantId)
        .where("fingerprint", "=", sql<string>`any(${requester.candidateFingerprints}::text[])`)
        .where("revoked_at", "is not", null)
        .as("revoked"),
    ])
    .executeTakeFirstOrThrow();
  return {
    installations: row.installations,
    policies: row.policies as TokenRequestFacts["policies"],
    agentTags: (row.agent?.tags as string[] | undefined) ?? [],
    revoked: new Set(row.revoked ?? []),
  };
}
