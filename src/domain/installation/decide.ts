import { ConflictError, NotFoundError } from "../../errors.ts";
import {
  CredentialsRead,
  InstallationCreated,
  InstallationCredentialsReencrypted,
  InstallationCredentialsRefreshed,
  InstallationNeedsReauth,
  InstallationPermissionsUpdated,
  InstallationReauthorized,
  InstallationRefreshFailed,
  InstallationRepositoriesChanged,
  InstallationResumed,
  InstallationRevoked,
  InstallationSuspended,
  type InstallationEvent,
  type InstallationInfoData,
} from "./events.ts";
import { statusOf, type InstallationState, type Platform } from "./evolve.ts";

type Source = "tenant" | "provider";
export interface CredentialFacts {
  fingerprint: string;
  expiresAt?: string;
  keyId: string;
}

export type InstallationCommand =
  | {
      type: "CreateInstallation";
      installationId: string;
      platform: Platform;
      app?: string;
      info: InstallationInfoData;
      requestId?: string;
      repositories?: string[];
      credentials?: CredentialFacts;
    }
  | { type: "ReauthorizeInstallation"; info: InstallationInfoData; requestId?: string; credentials?: CredentialFacts }
  | { type: "SuspendInstallation"; by: Source; reason?: string }
  | { type: "ResumeInstallation"; by: Source }
  | { type: "RevokeInstallation"; by: Source; providerRevoked: boolean; reason?: string }
  | { type: "UpdatePermissions"; permissions: Record<string, string>; events?: string[] }
  | { type: "ChangeRepositories"; repositorySelection?: "all" | "selected"; added: string[]; removed: string[] }
  | { type: "RecordRefresh"; credentials: CredentialFacts; previousFingerprint?: string }
  | { type: "RecordRefreshFailure"; providerCode: string; rejected: boolean; nextAttemptAt: string }
  | { type: "ReencryptCredentials"; fromKeyIds: string[]; toKeyId: string }
  | { type: "ReadCredentials"; fingerprint: string; expiresAt?: string };

export function decideInstallation(command: InstallationCommand, state: InstallationState): InstallationEvent[] {
  if (command.type === "CreateInstallation") {
    if (state.exists) throw new ConflictError(`installation ${command.installationId} already exists`);
    const { installationId, platform, app, info, requestId, repositories, credentials } = command;
    return [InstallationCreated({ installationId, platform, app, ...info, requestId, repositories, credentials })];
  }
  if (!state.exists) throw new NotFoundError("installation");
  const installationId = state.id;
  const status = statusOf(state);
  // Revocation is final; revoking again records nothing.
  if (state.revoked) {
    if (command.type === "RevokeInstallation") return [];
    throw new ConflictError("installation is revoked", { status });
  }
  switch (command.type) {
    case "ReauthorizeInstallation":
      if (command.info.externalId !== state.externalId) throw new ConflictError("the authorization is for a different account than this installation");
      return [InstallationReauthorized({ installationId, ...command.info, requestId: command.requestId, credentials: command.credentials })];
    case "SuspendInstallation": {
      const already = command.by === "tenant" ? state.suspendedByTenant : state.suspendedByProvider;
      return already ? [] : [InstallationSuspended({ installationId, by: command.by, reason: command.reason })];
    }
    case "ResumeInstallation": {
      if (command.by === "tenant" && !state.suspendedByTenant && state.suspendedByProvider) {
        throw new ConflictError("installation is suspended at the provider; it resumes when the provider lifts the suspension", { status });
      }
      const suspended = command.by === "tenant" ? state.suspendedByTenant : state.suspendedByProvider;
      return suspended ? [InstallationResumed({ installationId, by: command.by })] : [];
    }
    case "RevokeInstallation":
      return [InstallationRevoked({ installationId, by: command.by, providerRevoked: command.providerRevoked, reason: command.reason })];
    case "UpdatePermissions":
      return [InstallationPermissionsUpdated({ installationId, permissions: command.permissions, events: command.events })];
    case "ChangeRepositories":
      if (!command.added.length && !command.removed.length && !command.repositorySelection) return [];
      return [
        InstallationRepositoriesChanged({ installationId, repositorySelection: command.repositorySelection, added: command.added, removed: command.removed }),
      ];
    case "RecordRefresh":
      return [InstallationCredentialsRefreshed({ installationId, ...command.credentials, previousFingerprint: command.previousFingerprint })];
    case "RecordRefreshFailure":
      if (command.rejected) return state.needsReauth ? [] : [InstallationNeedsReauth({ installationId, providerCode: command.providerCode })];
      return [
        InstallationRefreshFailed({
          installationId,
          providerCode: command.providerCode,
          attempt: state.refreshFailures + 1,
          nextAttemptAt: command.nextAttemptAt,
        }),
      ];
    case "ReencryptCredentials":
      return [InstallationCredentialsReencrypted({ installationId, fromKeyIds: command.fromKeyIds, toKeyId: command.toKeyId })];
    case "ReadCredentials":
      if (status !== "active") throw new ConflictError(`installation is ${status.replace("_", " ")}: no credentials are handed out`, { status });
      return [CredentialsRead({ installationId, platform: state.platform, fingerprint: command.fingerprint, expiresAt: command.expiresAt })];
  }
}
