import { randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { githubTokenDecider, githubTokenStream } from "../../domain/githubToken/decider.ts";
import { permissionMapSchema } from "../../domain/githubToken/events.ts";
import { decideTokenRequest, type TokenPolicy } from "../../domain/githubToken/policy.ts";
import { parseInput } from "../../domain/validation.ts";
import { BadInputError, ConflictError, DomainError, ForbiddenError, NotFoundError } from "../../errors.ts";
import { withTenant, type Db, type Tx } from "../../store/db.ts";
import { readTokenRequestFacts, type TokenRequestFacts, type TokenRequestTarget } from "../../store/queries/tokenRequestQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend, handleCommand } from "../handleCommand.ts";
import { cacheKey, type CachedToken } from "../../runtime/githubTokenCache.ts";
import { storeTokenSecret } from "./tokenVault.ts";

const name = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_.-]{1,100}$/, "a repository name");
export const IssueGitHubTokenInput = z
  .object({
    app: z
      .string()
      .trim()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a GitHub App name as configured (e.g. rex)"),
    installationId: z.number().int().positive().optional(),
    owner: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_.-]{1,39}$/, "a GitHub account login")
      .optional(),
    repository: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_.-]{1,39}\/[A-Za-z0-9_.-]{1,100}$/, "owner/name")
      .optional(),
    /** Names under the installation's account; `owner/name` is accepted when the owner matches. */
    repositories: z.array(z.string().trim()).max(500).default([]),
    permissions: permissionMapSchema.default({}),
    /** A cached token is reused only when it has at least this long left (and always more than 5 minutes). */
    minValiditySeconds: z
      .number()
      .int()
      .min(0)
      .max(50 * 60, "at most 3000 seconds (tokens live an hour)")
      .default(0),
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
 *
 * A cached token costs one transaction: the facts the request is decided on (installation, policies,
 * agent tags, and whether a cached token was revoked meanwhile, by any process) in one statement,
 * then the append. A miss mints from GitHub between two transactions, so no connection waits on it.
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
    const minValidityMs = input.minValiditySeconds * 1000;

    const step = await withTenant(deps.db, actor.tenantId, async (trx): Promise<RequestStep> => {
      const facts = await readTokenRequestFacts(trx, actor.tenantId, targetOf(input, deps.githubApps.defaultApp), {
        agentId: actor.kind === "agent" && actor.subject.startsWith("agent:") ? actor.subject.slice(6) : undefined,
        candidateFingerprints: deps.tokenCache.fingerprintsOf(actor.tenantId, input.app),
      });
      const installation = targetInstallation(facts, input);
      const owner = installation.account_login;
      const asked = [...(input.repository ? [input.repository.split("/")[1]!] : []), ...input.repositories.map((r) => repositoryName(r, owner))];
      const decision = decideTokenRequest(
        facts.policies.map(policyOf),
        { subject: actor.subject, roles: actor.roles, tags: facts.agentTags },
        { app: input.app, owner, repositories: asked, permissions: input.permissions },
      );
      if (!decision.allowed) return { denied: decision.reason, owner, asked };

      const key = cacheKey({
        tenantId: actor.tenantId,
        app: input.app,
        installationId: Number(installation.external_id),
        repositories: decision.repositories,
        permissions: decision.permissions,
      });
      const hit = deps.tokenCache.peek(key, minValidityMs);
      if (hit && !facts.revoked.has(hit.fingerprint)) return { hit: { token: hit, installation, policy: decision.policy } };
      // Revoked by another process (or a webhook) since it was cached: never handed out again.
      if (hit) deps.tokenCache.forgetFingerprint(hit.fingerprint);
      return { mint: { key, decision, installation } };
    });

    if ("denied" in step) {
      const { denied, owner, asked } = step;
      await deps.security.accessDenied({
        tenantId: actor.tenantId,
        actor,
        reason: `token-policy:${denied}`,
        resource: "github-token",
        action: "github-token:issue",
        details: { app: input.app, owner, repositories: asked.slice(0, 20), permissions: input.permissions },
        request,
      });
      if (denied === "repositories-required")
        throw new BadInputError("repositories: the matching policy allows repository patterns only; name the repositories", "repositories");
      throw new ForbiddenError(`no token policy allows ${actor.subject} this ${input.app} token for ${owner}`);
    }
    if ("hit" in step) {
      // Nothing beside the append: on its own, sharing a commit with whatever else is being appended.
      const issued = await record(deps.db, deps, actor, request, { ...step.hit, cached: true });
      deps.metrics.githubTokenCacheHits.inc({ app: input.app });
      count("cached");
      return issued;
    }

    const { key, decision, installation } = step.mint;
    const githubInstallationId = Number(installation.external_id);
    const mint = () =>
      client.mint({
        installationId: githubInstallationId,
        ...(decision.repositories === "all" ? {} : { repositories: decision.repositories }),
        permissions: decision.permissions,
        deadline: deps.now().getTime() + REQUEST_DEADLINE_MS,
      });
    // `cached` here means another request's mint was shared (single flight): a token too new to have been revoked.
    const { token, cached } = await deps.tokenCache.getOrMint(key, { tenantId: actor.tenantId, app: input.app }, mint, minValidityMs);
    const issued = await withTenant(deps.db, actor.tenantId, (trx) =>
      record(trx, deps, actor, request, { token, cached, installation, policy: decision.policy }),
    );
    if (cached) deps.metrics.githubTokenCacheHits.inc({ app: input.app });
    count(cached ? "cached" : "issued");
    return issued;
  } catch (error) {
    count(error instanceof DomainError ? error.code.toLowerCase() : "error");
    throw error;
  }
}

type TargetInstallation = TokenRequestFacts["installations"][number];
type RequestStep =
  | { denied: string; owner: string; asked: string[] }
  | { hit: { token: CachedToken; installation: TargetInstallation; policy: string } }
  | { mint: { key: string; decision: Extract<ReturnType<typeof decideTokenRequest>, { allowed: true }>; installation: TargetInstallation } };

/**
 * Records the hand-out (token.issued, on a stream of its own): a cached token's on its own (`db`), a
 * freshly minted one inside the caller's transaction, with its secret into the vault beside it.
 */
async function record(
  target: Db | Tx,
  deps: Pick<AppDeps, "keyring" | "now">,
  actor: Actor,
  request: RequestMeta,
  args: { token: CachedToken; cached: boolean; installation: TargetInstallation; policy: string },
): Promise<IssuedGitHubToken> {
  const { token, cached, installation, policy } = args;
  const tokenId = randomUUID();
  const repositories = token.repositories;
  const command = {
    tenantId: actor.tenantId,
    ...githubTokenStream(tokenId),
    newStream: true,
    decider: githubTokenDecider,
    command: {
      type: "IssueGitHubToken" as const,
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
    occurredAt: deps.now(),
  };
  if (target.isTransaction) {
    await decideAndAppend(target as Tx, command);
    if (!cached) await storeTokenSecret(target as Tx, deps.keyring, actor.tenantId, token.fingerprint, token.token, token.expiresAt);
  } else {
    if (!cached) throw new Error("a freshly minted token is recorded with its secret, in a transaction");
    await handleCommand(target, command);
  }
  return {
    id: tokenId,
    token: token.token,
    expiresAt: token.expiresAt,
    installationId: token.installationId,
    repositories,
    permissions: token.permissions,
    cached,
    fingerprint: token.fingerprint,
    policy,
  };
}

function repositoryName(given: string, owner: string): string {
  const slash = given.indexOf("/");
  if (slash === -1) return parseInput(z.object({ repositories: z.array(name) }), { repositories: [given] }).repositories[0]!;
  if (given.slice(0, slash).toLowerCase() !== owner.toLowerCase())
    throw new BadInputError(`repositories: ${given} is not under ${owner}, the installation's account`, "repositories");
  return given.slice(slash + 1);
}

function targetOf(input: z.output<typeof IssueGitHubTokenInput>, defaultApp: string | undefined): TokenRequestTarget {
  const owner = input.owner ?? input.repository?.split("/")[0];
  return { app: input.app, defaultApp, ...(input.installationId !== undefined ? { installationId: input.installationId } : owner ? { owner } : {}) };
}

/** The installation the request names, or the tenant's only installation of the app when it names none; it must be active. */
function targetInstallation(facts: TokenRequestFacts, input: z.output<typeof IssueGitHubTokenInput>): TargetInstallation {
  const owner = input.owner ?? input.repository?.split("/")[0];
  if (!facts.installations.length) {
    const what = input.installationId !== undefined ? `installation ${input.installationId}` : owner ? `an installation for ${owner}` : "an installation";
    throw new NotFoundError(`${what} of the GitHub App ${input.app} in this tenant`);
  }
  if (facts.installations.length > 1)
    throw new BadInputError("installationId: the tenant has several installations of this app; name installationId, owner or repository", "installationId");
  const installation = facts.installations[0]!;
  if (installation.status !== "active")
    throw new ConflictError(`the ${input.app} installation for ${installation.account_login} is ${installation.status.replace("_", " ")}`, {
      status: installation.status,
    });
  return installation;
}

function policyOf(row: TokenRequestFacts["policies"][number]): TokenPolicy {
  return {
    name: row.name,
    app: row.app,
    roles: row.roles as TokenPolicy["roles"],
    subjects: row.subjects,
    agentTags: row.agent_tags,
    repositories: row.repositories,
    permissions: row.permissions as TokenPolicy["permissions"],
  };
}
