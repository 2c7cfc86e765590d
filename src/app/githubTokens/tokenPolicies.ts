import type { z } from "zod";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { TokenPolicyInput } from "../../domain/githubToken/policy.ts";
import { tokenPolicyDecider, tokenPolicyStream } from "../../domain/tokenPolicy/decider.ts";
import { parseInput } from "../../domain/validation.ts";
import { BadInputError } from "../../errors.ts";
import { withTenant } from "../../store/db.ts";
import { findTokenPolicy, type TokenPolicyRow } from "../../store/queries/githubTokenQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";

/** Creates or replaces the named policy (setting it unchanged records nothing); answers it as projected. */
export async function setTokenPolicy(
  deps: Pick<AppDeps, "db" | "githubApps" | "now">,
  actor: Actor,
  raw: z.input<typeof TokenPolicyInput>,
  request: RequestMeta = {},
): Promise<TokenPolicyRow> {
  const policy = parseInput(TokenPolicyInput, raw);
  if (!deps.githubApps.client(policy.app)) throw new BadInputError(`app: no GitHub App named ${policy.app} is configured`, "app");
  return withTenant(deps.db, actor.tenantId, async (trx) => {
    await decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...tokenPolicyStream(policy.name),
      decider: tokenPolicyDecider,
      command: { type: "SetTokenPolicy", policy },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    });
    return (await findTokenPolicy(trx, actor.tenantId, policy.name))!;
  });
}

export async function deleteTokenPolicy(deps: Pick<AppDeps, "db" | "now">, actor: Actor, name: string, request: RequestMeta = {}): Promise<boolean> {
  await withTenant(deps.db, actor.tenantId, (trx) =>
    decideAndAppend(trx, {
      tenantId: actor.tenantId,
      ...tokenPolicyStream(truncateWellFormed(name, 63)),
      decider: tokenPolicyDecider,
      command: { type: "DeleteTokenPolicy", name: truncateWellFormed(name, 63) },
      metadata: eventMetadata(actor, request),
      occurredAt: deps.now(),
    }),
  );
  return true;
}
