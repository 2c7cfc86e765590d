import { randomUUID } from "node:crypto";
import { z } from "zod";
import { eventMetadata, PLATFORM_TENANT, type Actor, type RequestMeta } from "../auth/actor.ts";
import { AuthFailure } from "../auth/verifyToken.ts";
import { roleSchema, tokenKindSchema } from "../domain/eventDefinition.ts";
import { SESSION_INVALID } from "../domain/session/decide.ts";
import { accessTokenDecider, accessTokenStream, sessionDecider, sessionStream } from "../domain/session/decider.ts";
import type { Grant } from "../domain/session/evolve.ts";
import { parseInput } from "../domain/validation.ts";
import { ConflictError, ForbiddenError, UnauthenticatedError } from "../errors.ts";
import { effectivePermissions, SERVICE_ONLY_PERMISSIONS, type Permission } from "../auth/permissions.ts";
import type { AppDeps } from "./deps.ts";
import { handleCommand } from "./handleCommand.ts";

const MAX_TTL_SECONDS = 366 * 86400;

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
    issuedVia: z.enum(["api", "cli", "bootstrap", "enrollment"]),
  })
  .refine((i) => i.roles.includes("platform") === (i.tenantId === PLATFORM_TENANT), {
    message: "the platform role belongs to platform tokens only",
    path: ["roles"],
  });

export interface IssuedTokens {
  accessToken: string;
  tokenId: string;
  expiresAt: Date;
  refreshToken?: string;
  refreshExpiresAt?: Date;
}

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
    const access = await deps.minter.mintAccessToken({ tenantId: input.tenantId, ...grant, tokenId, expiresAt });
    return { accessToken: access.token, tokenId, expiresAt };
  }

  const familyId = randomUUID();
  const refreshTokenId = randomUUID();
  const accessTokenId = randomUUID();
  const refreshExpiresAt = new Date(now.getTime() + deps.config.auth.refreshTokenTtl * 1000);
  await handleCommand(deps.db, {
    tenantId: input.tenantId,
    ...sessionStream(familyId),
    decider: sessionDecider,
    command: { type: "StartSession", familyId, grant, refreshTokenId, accessTokenId, expiresAt: refreshExpiresAt.toISOString() },
    metadata,
    occurredAt: now,
  });
  return mintPair(deps, input.tenantId, familyId, grant, accessTokenId, refreshTokenId, expiresAt, refreshExpiresAt);
}

/**
 * Spends a refresh token for a new pair. A token that was already spent revokes its whole family and
 * every access token minted from it, and is recorded as a critical security event.
 */
export async function refreshSession(
  deps: Pick<AppDeps, "db" | "config" | "minter" | "verifier" | "security" | "now">,
  refreshToken: string,
  request: RequestMeta = {},
): Promise<IssuedTokens> {
  let presented;
  try {
    presented = await deps.verifier.verifyRefreshToken(refreshToken);
  } catch (error) {
    if (!(error instanceof AuthFailure)) throw error;
    await deps.security.record({
      type: "auth.failed",
      tenantId: error.verified?.tenantId ?? null,
      actor: null,
      level: "warning",
      status: "failed",
      reason: error.reason,
      action: "refresh-session",
      request,
    });
    throw new UnauthenticatedError(SESSION_INVALID);
  }
  const refreshTokenId = randomUUID();
  const accessTokenId = randomUUID();
  const run = () => {
    const at = deps.now();
    return handleCommand(deps.db, {
      tenantId: presented.tenantId,
      ...sessionStream(presented.familyId),
      decider: sessionDecider,
      command: { type: "RefreshSession", presentedRefreshTokenId: presented.tokenId, refreshTokenId, accessTokenId, now: at.toISOString() },
      metadata: eventMetadata({ subject: presented.subject, kind: presented.kind, roles: [], tokenId: presented.tokenId }, request),
      occurredAt: at,
    });
  };
  let result;
  try {
    result = await run();
  } catch (error) {
    // A concurrent refresh of the same family won the append; deciding again sees the token as spent.
    if (!(error instanceof ConflictError)) throw error;
    result = await run();
  }
  const state = result.state;
  if (!state.exists) throw new UnauthenticatedError(SESSION_INVALID);
  if (result.decided[0]?.type === "session.revoked") {
    await deps.security.record({
      type: "auth.failed",
      tenantId: presented.tenantId,
      actor: null,
      level: "critical",
      status: "failed",
      reason: "refresh-token-reuse",
      action: "refresh-session",
      details: { familyId: presented.familyId, subject: presented.subject },
      request,
    });
    throw new UnauthenticatedError(SESSION_INVALID);
  }
  const now = deps.now();
  const ttl = state.grant.kind === "user" ? deps.config.auth.userTokenTtl : deps.config.auth.serviceTokenTtl;
  return mintPair(
    deps,
    presented.tenantId,
    presented.familyId,
    state.grant,
    accessTokenId,
    refreshTokenId,
    new Date(now.getTime() + ttl * 1000),
    new Date(state.expiresAt),
  );
}

async function mintPair(
  deps: Pick<AppDeps, "minter">,
  tenantId: string,
  familyId: string,
  grant: Grant,
  accessTokenId: string,
  refreshTokenId: string,
  expiresAt: Date,
  refreshExpiresAt: Date,
): Promise<IssuedTokens> {
  // An access token never outlives the family it came from.
  const accessExpiresAt = expiresAt < refreshExpiresAt ? expiresAt : refreshExpiresAt;
  const access = await deps.minter.mintAccessToken({ tenantId, ...grant, tokenId: accessTokenId, sessionId: familyId, expiresAt: accessExpiresAt });
  const refreshToken = await deps.minter.mintRefreshToken({
    tenantId,
    subject: grant.subject,
    kind: grant.kind,
    familyId,
    tokenId: refreshTokenId,
    expiresAt: refreshExpiresAt,
  });
  return { accessToken: access.token, tokenId: accessTokenId, expiresAt: accessExpiresAt, refreshToken, refreshExpiresAt };
}

export const RevokeTokenInput = z.object({ tokenId: z.string().trim().min(1, "must not be empty").max(200) });

/** Revokes an access token by its jti in the caller's tenant; every process refuses it from the next request. */
export async function revokeAccessToken(
  deps: Pick<AppDeps, "db" | "config" | "now">,
  actor: Actor,
  rawInput: z.input<typeof RevokeTokenInput>,
  request: RequestMeta = {},
): Promise<{ tokenId: string; revokedAt: Date }> {
  const { tokenId } = parseInput(RevokeTokenInput, rawInput);
  // Tokens Keyplane did not record (external issuer) stay on the list as long as any token may live.
  const now = deps.now();
  const fallbackExpiry = new Date(now.getTime() + MAX_TTL_SECONDS * 1000).toISOString();
  await handleCommand(deps.db, {
    tenantId: actor.tenantId,
    ...accessTokenStream(tokenId),
    decider: accessTokenDecider,
    command: { type: "RevokeAccessToken", tokenId, reason: "revoked", expiresAt: fallbackExpiry },
    metadata: eventMetadata(actor, request),
    occurredAt: now,
  });
  return { tokenId, revokedAt: deps.now() };
}
