import { NotFoundError } from "../../errors.ts";
import {
  IdentityExpiring,
  IdentityLinked,
  IdentityRefreshed,
  IdentityRefreshFailed,
  IdentityUnlinked,
  type IdentityEvent,
  type IdentityLinkedData,
} from "./events.ts";
import type { IdentityState } from "./evolve.ts";

export type IdentityTokenFacts = { accessFingerprint: string; accessExpiresAt?: string; refreshFingerprint?: string; refreshExpiresAt?: string; keyId: string };

export type IdentityCommand =
  | { type: "LinkIdentity"; data: Omit<IdentityLinkedData, "relinked" | "previousLogin"> }
  | { type: "RecordIdentityRefresh"; identityId: string; tokens: IdentityTokenFacts }
  | { type: "RecordIdentityRefreshFailure"; identityId: string; providerCode: string; rejected: boolean; nextAttemptAt?: string }
  | { type: "NoticeIdentityExpiring"; identityId: string; reason: "refresh_token_expiring" | "refresh_refused" }
  | { type: "UnlinkIdentity"; identityId: string; revokedAtGitHub: boolean; reason: "unlinked" | "principal-deleted" };

export function decideIdentity(command: IdentityCommand, state: IdentityState): IdentityEvent[] {
  if (command.type === "LinkIdentity") {
    const previous = state.status === "none" ? undefined : state.login;
    return [
      IdentityLinked({
        ...command.data,
        relinked: state.status !== "none",
        ...(previous !== undefined && previous !== command.data.login ? { previousLogin: previous } : {}),
      }),
    ];
  }
  if (state.status === "none") throw new NotFoundError("linked identity");
  const { subject } = state;
  switch (command.type) {
    case "RecordIdentityRefresh":
      return [IdentityRefreshed({ identityId: command.identityId, subject, previousFingerprint: state.accessFingerprint, ...command.tokens })];
    case "RecordIdentityRefreshFailure": {
      const failed = IdentityRefreshFailed({
        identityId: command.identityId,
        subject,
        providerCode: command.providerCode,
        rejected: command.rejected,
        ...(command.nextAttemptAt ? { nextAttemptAt: command.nextAttemptAt } : {}),
      });
      // A refusal is told to the principal at once: it must link again.
      if (!command.rejected || state.status === "needs_relink") return [failed];
      return [failed, expiring(command.identityId, state, "refresh_refused")];
    }
    case "NoticeIdentityExpiring":
      // Once per refresh token: the sweep may come by again before anyone refreshes.
      if (state.noticeFor !== undefined && state.noticeFor === (state.refreshFingerprint ?? state.accessFingerprint)) return [];
      return [expiring(command.identityId, state, command.reason)];
    case "UnlinkIdentity":
      return [
        IdentityUnlinked({
          identityId: command.identityId,
          subject,
          app: state.app,
          login: state.login,
          revokedAtGitHub: command.revokedAtGitHub,
          reason: command.reason,
        }),
      ];
  }
}

function expiring(identityId: string, state: Exclude<IdentityState, { status: "none" }>, reason: "refresh_token_expiring" | "refresh_refused"): IdentityEvent {
  return IdentityExpiring({
    identityId,
    subject: state.subject,
    app: state.app,
    login: state.login,
    reason,
    ...(state.refreshExpiresAt ? { refreshExpiresAt: state.refreshExpiresAt } : {}),
  });
}
