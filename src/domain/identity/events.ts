import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";

// A principal's linked GitHub account (the GitHub App's user authorization flow). Tokens never enter
// an event: the user token and the refresh token appear as fingerprints, keys as key ids. Every event
// names the principal (`subject`), whose own subscription (identityEvents) delivers it.

const tokenFacts = {
  accessFingerprint: z.string(),
  accessExpiresAt: z.string().optional(),
  refreshFingerprint: z.string().optional(),
  refreshExpiresAt: z.string().optional(),
  keyId: z.string(),
};

export const IdentityLinkRequested = defineEvent(
  "identity.link_requested",
  1,
  z.object({ requestId: z.string(), subject: z.string(), provider: z.literal("github"), app: z.string(), stateFingerprint: z.string(), expiresAt: z.string() }),
);

export const IdentityLinked = defineEvent(
  "identity.linked",
  1,
  z.object({
    identityId: z.string(),
    subject: z.string(),
    subjectKind: z.string(),
    provider: z.literal("github"),
    app: z.string(),
    accountId: z.string(),
    login: z.string(),
    requestId: z.string(),
    /** Linked again by the same principal (same identity id): the previous account, when it changed. */
    relinked: z.boolean(),
    previousLogin: z.string().optional(),
    ...tokenFacts,
  }),
);

export const IdentityRefreshed = defineEvent(
  "identity.refreshed",
  1,
  z.object({ identityId: z.string(), subject: z.string(), previousFingerprint: z.string().optional(), ...tokenFacts }),
);

export const IdentityRefreshFailed = defineEvent(
  "identity.refresh_failed",
  1,
  z.object({
    identityId: z.string(),
    subject: z.string(),
    /** GitHub's error code (bad_refresh_token, server_error, timeout…). */
    providerCode: z.string(),
    /** GitHub refused the refresh token: the principal must link again. */
    rejected: z.boolean(),
    nextAttemptAt: z.string().optional(),
  }),
);

export const IdentityExpiring = defineEvent(
  "identity.expiring",
  1,
  z.object({
    identityId: z.string(),
    subject: z.string(),
    app: z.string(),
    login: z.string(),
    /** refresh_token_expiring: its refresh token ends within a day; refresh_refused: GitHub refused it. */
    reason: z.enum(["refresh_token_expiring", "refresh_refused"]),
    refreshExpiresAt: z.string().optional(),
  }),
);

export const IdentityTokenIssued = defineEvent(
  "identity.token_issued",
  1,
  z.object({ identityId: z.string(), subject: z.string(), fingerprint: z.string(), expiresAt: z.string().optional() }),
);

export const IdentityUnlinked = defineEvent(
  "identity.unlinked",
  1,
  z.object({
    identityId: z.string(),
    subject: z.string(),
    app: z.string(),
    login: z.string(),
    /** Whether GitHub confirmed the grant's revocation (false: it was already gone there, or could not be reached for a deleted principal). */
    revokedAtGitHub: z.boolean(),
    /** unlinked: asked for; principal-deleted: its agent was deleted. */
    reason: z.enum(["unlinked", "principal-deleted"]).optional(),
  }),
);

export const identityEvents = [
  IdentityLinkRequested,
  IdentityLinked,
  IdentityRefreshed,
  IdentityRefreshFailed,
  IdentityExpiring,
  IdentityTokenIssued,
  IdentityUnlinked,
] as const;
export type IdentityEvent = EventOf<(typeof identityEvents)[number]>;
export type IdentityLinkedData = z.infer<(typeof IdentityLinked)["schema"]>;
