import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { decideGitHubToken, evolveGitHubToken, initialGitHubTokenState } from "../../domain/githubToken/decide.ts";
import { permissionMapSchema } from "../../domain/githubToken/events.ts";
import { decideTokenRequest, type TokenPolicy } from "../../domain/githubToken/policy.ts";
import { parseInput } from "../../domain/validation.ts";
import { BadInputError, ConflictError, DomainError, ForbiddenError, NotFoundError } from "../../errors.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import type { InstallationRow } from "../../store/queries/installationQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import { cacheKey, type CachedToken } from "./tokenCache.ts";
import { storeTokenSecret } from "./tokenVault.ts";

export const githubTokenDecider = { initialState: initialGitHubTokenState, evolve: evolveGitHubToken, decide: decideGitHubToken };
export const githubTokenStream = (tokenId: string) => ({ streamType: "github_token", streamId: tokenId });

const name = z.string().trim().regex(/^[A-Za-z0-9_.-]{1,100}$/, "a repository name");
export const IssueGitHubTokenInput = z
  .object({
    app: z.string().trim().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a GitHub App name as configured (e.g. rex)"),
    installationId: z.number().int().positive().optional(),
    owner: z.string().trim().regex(/^[A-Za-z0-9_.-]{1,39}$/, "a GitHub account login").optional(),
    repository: z.string().trim().regex(/^[A-Za-z0-9_.-]{1,39}\/[A-Za-z0-9_.-]{1,100}$/, "owner/name").optional(),
    /** Names under the installation's account; `owner/name` is accepted when the owner matches. */
    repositories: z.array(z.string().trim()).max(500).default([]),
    permissions: permissionMapSchema.default({}),
    /** A cached token is reused only when it has at least this long left (and always more than 5 minutes). */
    minValiditySeconds: z.number().int().min(0).max(50 * 60, "at most 3000 seconds (tokens live an hour)").default(0),
  })
  .refine((i) => [i.installationId, i.owner, i.repository].filter((v) => v !== undefined).length <= 1, {
    message: "name at most one of installationId, owner or repository (none: the tenant's only installation of the app)",
    path: ["installationId"],
  });

export interface IssuedGitHubToken {
  id: string;
  token: string;
  expiresAt: Date;
  installationId: number;
  repositories: string[] | null;
  permissions: Record<string, string>;
  cached: boolean;
  fingerprint: string;
  policy: string;
}

const REQUEST_DEADLINE_MS = 10_000;

/**
 * A short-lived GitHub App installation token for a service, agent or admin: only for an
 * installation this tenant claimed, only as far as one of its token policies allows, from the
 * per-process cache when an identical token has more than five minutes left, and always recorded
 * (token.issued with the fingerprint, marked cached or not) before it leaves.
 */
export async function issueGitHubToken(
  deps: Pick<AppDeps, "db" | "githubApps" | "tokenCache" | "keyring" | "security" | "metrics" | "now">,
  actor: Actor,
  rawInput: z.input<typeof IssueGitHubTokenInput>,
  request: RequestMeta = {},
): Promise<IssuedGitHubToken> {
  const input = parseInput(IssueGitHubTokenInput, rawInput);
  const count = (outcome: string) => deps.metrics.githubTokenIssues.inc({ app: input.app, outcome });
  try {
    const client = deps.githubApps.client(input.app);
    if (!client) throw new BadInputError(`app: no GitHub App named ${input.app} is configured`, "app");

    const { installation, policies, tags } = await withTenant(deps.db, actor.tenantId, async (trx) => ({
      installation: await findTargetInstallation(trx, actor.tenantId, input.app, deps.githubApps.defaultApp, input),
      policies: await loadPolicies(trx, actor.tenantId, input.app),
      tags: await agentTags(trx, actor),
    }));
    if (installation.status !== "active") throw new ConflictError(`the ${input.app} installation for ${installation.account_login} is ${installation.status.replace("_", " ")}`, { status: installation.status });

    const owner = installation.account_login;
    const asked = [...(input.repository ? [input.repository.split("/")[1]!] : []), ...input.repositories.map((r) => repositoryName(r, owner))];
    const decision = decideTokenRequest(policies, { subject: actor.subject, roles: actor.roles, tags }, { app: input.app, owner, repositories: asked, permissions: input.permissions });
    if (!decision.allowed) {
      await deps.security.record({
        type: "access.denied",
        tenantId: actor.tenantId,
        actor,
        level: "warning",
        status: "denied",
        reason: `token-policy:${decision.reason}`,
        resource: "github-token",
        action: "github-token:issue",
        details: { app: input.app, owner, repositories: asked.slice(0, 20), permissions: input.permissions },
        request,
      });
      if (decision.reason === "repositories-required") throw new BadInputError("repositories: the matching policy allows repository patterns only; name the repositories", "repositories");
      throw new ForbiddenError(`no token policy allows ${actor.subject} this ${input.app} token for ${owner}`);
    }

    const githubInstallationId = Number(installation.external_id);
    const keyParts = { tenantId: actor.tenantId, app: input.app, installationId: githubInstallationId, repositories: decision.repositories, permissions: decision.permissions };
    const mint = () =>
      client.mint({
        installationId: githubInstallationId,
        ...(decision.repositories === "all" ? {} : { repositories: decision.repositories }),
        permissions: decision.permissions,
        deadline: deps.now().getTime() + REQUEST_DEADLINE_MS,
      });
    const key = cacheKey(keyParts);
    const minValidityMs = input.minValiditySeconds * 1000;
    let { token, cached } = await deps.tokenCache.getOrMint(key, { tenantId: actor.tenantId, app: input.app }, mint, minValidityMs);
    for (let attempt = 0; ; attempt++) {
      const recorded = await record(deps, actor, request, { token, cached, installation, policy: decision.policy });
      if (recorded) {
        if (cached) deps.metrics.githubTokenCacheHits.inc({ app: input.app });
        count(cached ? "cached" : "issued");
        return recorded;
      }
      // Another process revoked this token: forget it and mint a fresh one.
      deps.tokenCache.forgetFingerprint(token.fingerprint);
      if (attempt > 0) throw new ConflictError("the token was revoked while it was being issued; try again");
      ({ token, cached } = await deps.tokenCache.getOrMint(key, { tenantId: actor.tenantId, app: input.app }, mint, minValidityMs));
    }
  } catch (error) {
    count(error instanceof DomainError ? error.code.toLowerCase() : "error");
    throw error;
  }
}

/** Records the hand-out, unless the token was revoked meanwhile (another process, a webhook): then null. */
async function record(
  deps: Pick<AppDeps, "db" | "keyring" | "now">,
  actor: Actor,
  request: RequestMeta,
  args: { token: CachedToken; cached: boolean; installation: InstallationRow; policy: string },
): Promise<IssuedGitHubToken | null> {
  const { token, cached, installation, policy } = args;
  const tokenId = randomUUID();
  return withTenant(deps.db, actor.tenantId, async (trx) => {
    if (cached) {
      const revoked = await trx.selectFrom("github_tokens").select("token_id").where("tenant_id", "=", actor.tenantId).where("fingerprint", "=", token.fingerprint).where("revoked_at", "is not", null).executeTakeFirst();
      if (revoked) return null;
    }
    const repositories = token.repositories;
    await decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...githubTokenStream(tokenId),
      decider: githubTokenDecider,
      command: {
        type: "IssueGitHubToken",
        data: {
          tokenId,
          app: token.app,
          installationId: installation.installation_id,
          githubInstallationId: token.installationId,
          requester: actor.subject,
          policy,
          repositories,
          permissions: token.permissions,
          fingerprint: token.fingerprint,
          expiresAt: token.expiresAt.toISOString(),
          cached,
        },
      },
      metadata: eventMetadata(actor, request),
    });
    if (!cached) await storeTokenSecret(trx, deps.keyring, actor.tenantId, token.fingerprint, token.token, token.expiresAt);
    return { id: tokenId, token: token.token, expiresAt: token.expiresAt, installationId: token.installationId, repositories, permissions: token.permissions, cached, fingerprint: token.fingerprint, policy };
  });
}

function repositoryName(given: string, owner: string): string {
  const slash = given.indexOf("/");
  if (slash === -1) return parseInput(z.object({ repositories: z.array(name) }), { repositories: [given] }).repositories[0]!;
  if (given.slice(0, slash).toLowerCase() !== owner.toLowerCase()) throw new BadInputError(`repositories: ${given} is not under ${owner}, the installation's account`, "repositories");
  return given.slice(slash + 1);
}

async function findTargetInstallation(
  trx: Tx,
  tenantId: string,
  app: string,
  defaultApp: string | undefined,
  target: { installationId?: number; owner?: string; repository?: string },
): Promise<InstallationRow> {
  let query = trx
    .selectFrom("installations")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("platform", "=", "github")
    .where("status", "<>", "revoked")
    // Installations made before apps had names belong to the default app.
    .where((eb) => (app === defaultApp ? eb.or([eb("app", "=", app), eb("app", "is", null)]) : eb("app", "=", app)));
  const owner = target.owner ?? target.repository?.split("/")[0];
  if (target.installationId !== undefined) query = query.where("external_id", "=", String(target.installationId));
  else if (owner) query = query.where(sql<string>`lower(account_login)`, "=", owner.toLowerCase());
  const rows = await query.limit(2).execute();
  if (!rows.length) {
    const what = target.installationId !== undefined ? `installation ${target.installationId}` : owner ? `an installation for ${owner}` : "an installation";
    throw new NotFoundError(`${what} of the GitHub App ${app} in this tenant`);
  }
  // Naming nothing means the tenant's only installation of the app.
  if (rows.length > 1) throw new BadInputError("installationId: the tenant has several installations of this app; name installationId, owner or repository", "installationId");
  return rows[0]!;
}

/** An enrolled agent is matched by its tags as they are now (set at enrollment, changed by updateAgent). */
async function agentTags(trx: Tx, actor: Actor): Promise<string[]> {
  if (actor.kind !== "agent" || !actor.subject.startsWith("agent:")) return [];
  const row = await trx.selectFrom("agents").select(["tags", "status"]).where("tenant_id", "=", actor.tenantId).where("agent_id", "=", actor.subject.slice(6)).executeTakeFirst();
  return row && row.status !== "deleted" ? row.tags : [];
}

async function loadPolicies(trx: Tx, tenantId: string, app: string): Promise<TokenPolicy[]> {
  const rows = await trx.selectFrom("token_policies").selectAll().where("tenant_id", "=", tenantId).where("app", "=", app).execute();
  return rows.map((r) => ({ name: r.name, app: r.app, roles: r.roles as TokenPolicy["roles"], subjects: r.subjects, agentTags: r.agent_tags, repositories: r.repositories, permissions: r.permissions as TokenPolicy["permissions"] }));
}
