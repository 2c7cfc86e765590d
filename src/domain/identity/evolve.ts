import type { IdentityEvent } from "./events.ts";

export type IdentityState =
  | { status: "none" }
  | {
      status: "linked" | "needs_relink";
      subject: string;
      app: string;
      login: string;
      accessFingerprint: string;
      refreshExpiresAt?: string;
      refreshFailures: number;
      /** The refresh token the last identity.expiring was about: one notice per refresh token. */
      noticeFor?: string;
      refreshFingerprint?: string;
    };

export const initialIdentityState = (): IdentityState => ({ status: "none" });

export function evolveIdentity(state: IdentityState, event: IdentityEvent): IdentityState {
  switch (event.type) {
    case "identity.linked": {
      const d = event.data;
      return {
        status: "linked",
        subject: d.subject,
        app: d.app,
        login: d.login,
        accessFingerprint: d.accessFingerprint,
        refreshExpiresAt: d.refreshExpiresAt,
        refreshFingerprint: d.refreshFingerprint,
        refreshFailures: 0,
      };
    }
    case "identity.refreshed":
      if (state.status === "none") return state;
      return {
        ...state,
        status: "linked",
        accessFingerprint: event.data.accessFingerprint,
        refreshExpiresAt: event.data.refreshExpiresAt,
        refreshFingerprint: event.data.refreshFingerprint,
        refreshFailures: 0,
      };
    case "identity.refresh_failed":
      if (state.status === "none") return state;
      return { ...state, status: event.data.rejected ? "needs_relink" : state.status, refreshFailures: state.refreshFailures + 1 };
    case "identity.expiring":
      if (state.status === "none") return state;
      return { ...state, noticeFor: state.refreshFingerprint ?? state.accessFingerprint };
    case "identity.unlinked":
      return { status: "none" };
    default:
      return state;
  }
}
