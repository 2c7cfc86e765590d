import { randomUUID } from "node:crypto";
import { z } from "zod";
import { makeActor, PLATFORM_TENANT, type RequestMeta } from "../../auth/actor.ts";
import { AuthFailure, type AuthFailureReason } from "../../auth/verifyToken.ts";
import { roleSchema, type TokenKind } from "../../domain/eventDefinition.ts";
import { tenantIdSchema } from "../../domain/tenant/decide.ts";
import { parseInput } from "../../domain/validation.ts";
import { ConflictError, TenantSuspendedError, UnauthenticatedError } from "../../errors.ts";
import type { AppDeps } from "../deps.ts";
import { issueAccessToken } from "./issueAccessToken.ts";
import { SESSION_ACCESS_TOKEN_TTL_SECONDS } from "./startSession.ts";
import { SIGN_IN_CODE_DEFAULT_TTL_SECONDS, SIGN_IN_CODE_MAX_TTL_SECONDS, SIGN_IN_CODE_MIN_TTL_SECONDS } from "./signInCodeLimits.ts";
import type { IssuedTokens } from "./tokenPair.ts";

// A one-time sign-in link for the console (`keyplane console link`): a short-lived code, signed with
// Keyplane's key (so the CLI needs no database to make one, and can run beside `keyplane serve` on the
// embedded one), that redeemSignInCode exchanges once for a session. The code's id is the id of the
// session it starts: a second redemption finds that session's stream taken and is refused.

/** A session started from a sign-in code ends by then at the latest (REFRESH_TOKEN_TTL_SECONDS when shorter). */
export const SIGN_IN_SESSION_MAX_SECONDS = 12 * 3600;

/** One message for every refused code (spent, expired, forged, garbled): the reason goes to the audit log. */
export const SIGN_IN_CODE_INVALID = "this sign-in link was already used or has expired";

export const SignInCodeInput = z
  .object({
    tenantId: z.string().refine((id) => id === PLATFORM_TENANT || tenantIdSchema.safeParse(id).success, "is not a tenant id"),
    subject: z.string().trim().min(1, "must not be empty").max(200).default("console-link"),
    roles: z.array(roleSchema).min(1, "at least one role").default(["admin"]),
    ttlSeconds: z
      .number()
      .int()
      .min(SIGN_IN_CODE_MIN_TTL_SECONDS, `at least ${SIGN_IN_CODE_MIN_TTL_SECONDS} seconds`)
      .max(SIGN_IN_CODE_MAX_TTL_SECONDS, `at most ${SIGN_IN_CODE_MAX_TTL_SECONDS} seconds`)
      .default(SIGN_IN_CODE_DEFAULT_TTL_SECONDS),
  })
  .refine((i) => i.roles.includes("platform") === (i.tenantId === PLATFORM_TENANT) && (!i.roles.includes("platform") || i.roles.length === 1), {
    message: "the platform role goes alone, and with platform operators only",
    path: ["roles"],
  });

export interface SignInCode {
  code: string;
  /** The code's jti: the id of the session it will start. */
  codeId: string;
  expiresAt: Date;
  /** `<public URL>/console/#code=<code>`: in the fragment, which browsers send to no server. */
  link: string;
}

/** Signs a one-time sign-in code (nothing is stored: the CLI makes one without the database). */
export async function mintSignInCode(deps: Pick<AppDeps, "config" | "minter" | "now">, rawInput: z.input<typeof SignInCodeInput>): Promise<SignInCode> {
  const input = parseInput(SignInCodeInput, rawInput);
  const kind: TokenKind = input.tenantId === PLATFORM_TENANT ? "platform" : "user";
  const codeId = randomUUID();
  const issuedAt = deps.now();
  const expiresAt = new Date(issuedAt.getTime() + input.ttlSeconds * 1000);
  const code = await deps.minter.mintSignInCode({ tenantId: input.tenantId, subject: input.subject, kind, roles: input.roles, codeId, issuedAt, expiresAt });
  return { code, codeId, expiresAt, link: `${deps.config.publicUrl}/console/#code=${code}` };
}

/**
 * Exchanges a sign-in code for a session of the principal it names, as startSession does (a 15-minute
 * access token and a rotating refresh token, ending within SIGN_IN_SESSION_MAX_SECONDS), once: the
 * session's family id is the code's id. Every refusal answers the same UNAUTHENTICATED and is recorded.
 */
export async function redeemSignInCode(
  deps: Pick<AppDeps, "db" | "config" | "minter" | "verifier" | "security" | "standing" | "now">,
  code: string,
  request: RequestMeta = {},
): Promise<IssuedTokens> {
  const refuse = async (
    reason: AuthFailureReason | "sign-in-code-reuse",
    tenantId: string | null,
    details: Record<string, string | undefined>,
    answer: Error = new UnauthenticatedError(SIGN_IN_CODE_INVALID),
  ): Promise<never> => {
    await deps.security.authFailed({
      tenantId,
      actor: null,
      // A spent code presented again: the link was opened twice, or someone else holds a copy.
      level: reason === "sign-in-code-reuse" ? "critical" : "warning",
      reason,
      action: "redeem-sign-in-code",
      details: Object.fromEntries(Object.entries(details).filter(([, value]) => value !== undefined)),
      request,
    });
    throw answer;
  };

  let claims;
  try {
    claims = await deps.verifier.verifySignInCode(code);
  } catch (error) {
    if (!(error instanceof AuthFailure)) throw error;
    return refuse(error.reason, error.verified?.tenantId ?? null, { subject: error.verified?.subject, tokenId: error.verified?.tokenId });
  }
  const details = { subject: claims.subject, tokenId: claims.codeId };
  const actor = makeActor({
    kind: claims.kind,
    subject: claims.subject,
    tenantId: claims.tenantId,
    roles: claims.roles,
    scopes: [],
    tokenId: claims.codeId,
    issuer: deps.config.auth.issuer,
    expiresAt: claims.expiresAt,
  });
  if (claims.tenantId !== PLATFORM_TENANT) {
    // The CLI signs codes without the database: whether the tenant exists (and is active) is known here.
    const standing = await deps.standing.standing(actor);
    // A tenant that does not exist has no log of its own: that refusal goes to the platform log.
    if (standing.status === "suspended") return refuse("tenant-suspended", claims.tenantId, details, new TenantSuspendedError());
    if (standing.status !== "active") return refuse("unknown-tenant", standing.status === null ? null : claims.tenantId, details);
  }
  const refreshLimit = deps.now().getTime() + Math.min(deps.config.auth.refreshTokenTtl, SIGN_IN_SESSION_MAX_SECONDS) * 1000;
  try {
    return await issueAccessToken(
      deps,
      actor,
      {
        tenantId: claims.tenantId,
        subject: claims.subject,
        kind: claims.kind,
        roles: claims.roles,
        scopes: [],
        ttlSeconds: SESSION_ACCESS_TOKEN_TTL_SECONDS,
        refreshable: true,
        refreshUntil: new Date(refreshLimit),
        familyId: claims.codeId,
        issuedVia: "api",
      },
      request,
    );
  } catch (error) {
    // The code's session exists (or a concurrent redemption is starting it): the code is spent.
    if (error instanceof ConflictError) return refuse("sign-in-code-reuse", claims.tenantId, { subject: claims.subject, familyId: claims.codeId });
    throw error;
  }
}
