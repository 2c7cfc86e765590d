import { z } from "zod";
import { defineEvent, isoTime, type EventOf } from "../eventDefinition.ts";

// GitHub installation tokens handed out by Keyplane (the policies that allow them: domain/tokenPolicy).
// Events hold the token's fingerprint, never the token.

export const accessLevelSchema = z.enum(["read", "write", "admin"]);
export const permissionMapSchema = z.record(z.string().regex(/^[a-z_]{1,60}$/, "permission names look like contents or pull_requests"), accessLevelSchema);

export const GitHubTokenIssued = defineEvent(
  "token.issued",
  1,
  z.object({
    tokenId: z.string(),
    app: z.string(),
    /** Keyplane's installation id and GitHub's. */
    installationId: z.string(),
    githubInstallationId: z.number().int(),
    requester: z.string(),
    policy: z.string(),
    repositories: z.array(z.string()).nullable(),
    permissions: z.record(z.string(), z.string()),
    fingerprint: z.string(),
    expiresAt: isoTime,
    /** Served from the cache: the same GitHub token as an earlier issue with this fingerprint. */
    cached: z.boolean(),
  }),
);
export const GitHubTokenRevoked = defineEvent(
  "token.revoked",
  1,
  z.object({
    tokenId: z.string(),
    fingerprint: z.string(),
    /** requested | installation_revoked | installation_suspended | expired */
    reason: z.string(),
    /** Whether GitHub was asked to revoke it (an expired or already dead token is only recorded). */
    revokedAtGitHub: z.boolean(),
  }),
);

export const githubTokenEvents = [GitHubTokenIssued, GitHubTokenRevoked] as const;
export type GitHubTokenEvent = EventOf<(typeof githubTokenEvents)[number]>;
