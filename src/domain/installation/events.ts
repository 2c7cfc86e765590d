import { z } from "zod";
import { defineEvent, isoTime, type EventOf } from "../eventDefinition.ts";

// Installation events carry public facts and fingerprints only: the credentials themselves live
// encrypted in the vault (installation_secrets), never in the log.

export const platformSchema = z.enum(["github", "slack", "jira"]);
export const installationStatusSchema = z.enum(["active", "suspended", "needs_reauth", "revoked"]);
export type InstallationStatus = z.infer<typeof installationStatusSchema>;

export const installationInfoSchema = z.object({
  externalId: z.string().min(1).max(200),
  account: z.object({ id: z.string(), login: z.string(), type: z.string(), url: z.string().optional() }),
  permissions: z.record(z.string(), z.string()),
  scopes: z.array(z.string()),
  repositorySelection: z.enum(["all", "selected"]).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type InstallationInfoData = z.infer<typeof installationInfoSchema>;

/** What is known about credentials without the credentials: which token, until when, under which key. */
const credentialFacts = {
  fingerprint: z.string(),
  expiresAt: isoTime.optional(),
  keyId: z.string(),
};
const source = z.enum(["tenant", "provider"]);

export const InstallationRequested = defineEvent(
  "installation.requested",
  1,
  z.object({ requestId: z.string(), platform: platformSchema, stateFingerprint: z.string(), expiresAt: isoTime }),
);
export const InstallationCreated = defineEvent(
  "installation.created",
  1,
  z.object({
    installationId: z.string(),
    platform: platformSchema,
    /** GitHub: the named app installed (rex, clippy, …). */
    app: z.string().optional(),
    ...installationInfoSchema.shape,
    requestId: z.string().optional(),
    repositories: z.array(z.string()).optional(),
    credentials: z.object(credentialFacts).optional(),
  }),
);
export const InstallationReauthorized = defineEvent(
  "installation.reauthorized",
  1,
  z.object({
    installationId: z.string(),
    ...installationInfoSchema.shape,
    requestId: z.string().optional(),
    credentials: z.object(credentialFacts).optional(),
  }),
);
export const InstallationSuspended = defineEvent(
  "installation.suspended",
  1,
  z.object({ installationId: z.string(), by: source, reason: z.string().optional() }),
);
export const InstallationResumed = defineEvent("installation.resumed", 1, z.object({ installationId: z.string(), by: source }));
export const InstallationRevoked = defineEvent(
  "installation.revoked",
  1,
  z.object({ installationId: z.string(), by: source, providerRevoked: z.boolean(), reason: z.string().optional() }),
);
export const InstallationPermissionsUpdated = defineEvent(
  "installation.permissions_updated",
  1,
  z.object({ installationId: z.string(), permissions: z.record(z.string(), z.string()), events: z.array(z.string()).optional() }),
);
export const InstallationRepositoriesChanged = defineEvent(
  "installation.repositories_changed",
  1,
  z.object({
    installationId: z.string(),
    repositorySelection: z.enum(["all", "selected"]).optional(),
    added: z.array(z.string()),
    removed: z.array(z.string()),
  }),
);
export const InstallationCredentialsRefreshed = defineEvent(
  "installation.credentials_refreshed",
  1,
  z.object({ installationId: z.string(), ...credentialFacts, previousFingerprint: z.string().optional() }),
);
/** A refresh that failed for a reason that may pass (timeout, 5xx): retried with backoff. */
export const InstallationRefreshFailed = defineEvent(
  "installation.refresh_failed",
  1,
  z.object({ installationId: z.string(), providerCode: z.string(), attempt: z.number().int().positive(), nextAttemptAt: isoTime }),
);
/** The provider refused the grant itself: a person must install again. */
export const InstallationNeedsReauth = defineEvent("installation.needs_reauth", 1, z.object({ installationId: z.string(), providerCode: z.string() }));
export const InstallationCredentialsReencrypted = defineEvent(
  "installation.credentials_reencrypted",
  1,
  z.object({ installationId: z.string(), fromKeyIds: z.array(z.string()), toKeyId: z.string() }),
);
/** Every hand-out of a usable credential: where leaks happen, so each one is on the record. */
export const CredentialsRead = defineEvent(
  "credentials.read",
  1,
  z.object({ installationId: z.string(), platform: platformSchema, fingerprint: z.string(), expiresAt: isoTime.optional() }),
);

export const installationEvents = [
  InstallationRequested,
  InstallationCreated,
  InstallationReauthorized,
  InstallationSuspended,
  InstallationResumed,
  InstallationRevoked,
  InstallationPermissionsUpdated,
  InstallationRepositoriesChanged,
  InstallationCredentialsRefreshed,
  InstallationRefreshFailed,
  InstallationNeedsReauth,
  InstallationCredentialsReencrypted,
  CredentialsRead,
] as const;

export type InstallationEvent = EventOf<(typeof installationEvents)[number]>;
