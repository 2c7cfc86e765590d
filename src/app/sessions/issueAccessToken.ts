import { randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, PLATFORM_TENANT, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { effectivePermissions, SERVICE_ONLY_PERMISSIONS, type Permission } from "../../auth/permissions.ts";
import { roleSchema, tokenKindSchema } from "../../domain/eventDefinition.ts";
import { accessTokenDecider, accessTokenStream, sessionDecider, sessionStream } from "../../domain/session/decider.ts";
import type { Grant } from "../../domain/session/evolve.ts";
import { parseInput } from "../../domain/validation.ts";
import { ForbiddenError } from "../../errors.ts";
import type { AppDeps } from "../deps.ts";
import { handleCommand } from "../handleCommand.ts";
import { MAX_TTL_SECONDS, mintPair, type IssuedTokens } from "./tokenPair.ts";

export const IssueTokenInput = z
  .object({
    tenantId: z.string().min(1),
    subject: z.string().trim().min(1, "must not be empty").max(200),
    kind: tokenKindSchema,
    roles: z.array(roleSchema).min(1, "at least one role"),
    scopes: z
      .array(z.string().regex(/^[a-z-]+(:[a-z-]+)?$/, "scopes look like resource:verb"))
      .max(50)
      .default([]),
    ttlSeconds: z.number().int().min(60, "at least 60 seconds").max(MAX_TTL_SECONDS, "at most 366 days").optional(),
    refreshable: z.boolean().default(false),
    /** A refreshable token's family ends by then at the latest (a session never outlives the token it came from). */
    refreshUntil: z.date().optional(),
    /**
     * The refresh-token family's id, when the caller names it (a sign-in code's id, so that the code
     * starts one session at most); a fresh one otherwise. Starting a family that exists is a conflict.
     */
    familyId: z.string().min(1).max(200).optional(),
    issuedVia: z.enum(["api", "cli", "bootstrap", "enrollment"]),
  })
  .refine((i) => i.roles.includes("platform") === (i.tenantId === PLATFORM_TENANT), {
    message: "the platform role belongs to platform tokens only",
    path: ["roles"],
  });

/** Mints an access token (and, when refreshable, starts a refresh-token family); only ids are recorded. */
export async function issueAccessToken(
  deps: Pick<AppDeps, "db" | "config" | "minter" | "now">,
  actor: Actor,
  rawInput: z.input<typeof IssueTokenInput>,
  request: RequestMeta = {},
): Promise<IssuedTokens> {
  const input = parseInput(IssueTokenInput, rawInput);
  // Nobody hands on more than they hold (the CLI and start-up act as the platform itself).
  if (input.issuedVia === "api") {
    const delegable = (p: Permission) => actor.permissions.has("token:issue") && SERVICE_ONLY_PERMISSIONS.has(p);
    const beyond = [...effectivePermissions(input.roles, input.scopes)].filter((p) => !actor.permissions.has(p) && !delegable(p));
    if (beyond.length) throw new ForbiddenError(`the token would hold permissions the caller lacks: ${beyond.join(", ")}`);
  }
  const now = deps.now();
  const defaultTtl = input.kind === "user" ? deps.config.auth.userTokenTtl : deps.config.auth.serviceTokenTtl;
  const expiresAt = new Date(now.getTime() + (input.ttlSeconds ?? defaultTtl) * 1000);
  const grant: Grant = { subject: input.subject, kind: input.kind, roles: input.roles, scopes: input.scopes };
  const metadata = eventMetadata(actor, request);

  if (!input.refreshable) {
    const tokenId = randomUUID();
    await handleCommand(deps.db, {
      tenantId: input.tenantId,
      ...accessTokenStream(tokenId),
      decider: accessTokenDecider,
      command: { type: "IssueAccessToken", tokenId, grant, expiresAt: expiresAt.toISOString(), issuedVia: input.issuedVia },
      metadata,
      occurredAt: now,
    });
    const access = await deps.minter.mintAccessToken({ tenantId: input.tenantId, ...grant, tokenId, issuedAt: now, expiresAt });
    return { accessToken: access.token, tokenId, expiresAt };
  }

  const familyId = input.familyId ?? randomUUID();
  const refreshTokenId = randomUUID();
  const accessTokenId = randomUUID();
  const refreshLimit = now.getTime() + deps.config.auth.refreshTokenTtl * 1000;
  const refreshExpiresAt = new Date(Math.min(refreshLimit, input.refreshUntil?.getTime() ?? refreshLimit));
  await handleCommand(deps.db, {
    tenantId: input.tenantId,
    ...sessionStream(familyId),
    decider: sessionDecider,
    command: { type: "StartSession", familyId, grant, refreshTokenId, accessTokenId, expiresAt: refreshExpiresAt.toISOString() },
    metadata,
    occurredAt: now,
  });
  return mintPair(deps, input.tenantId, familyId, grant, accessTokenId, refreshTokenId, now, expiresAt, refreshExpiresAt);
}
