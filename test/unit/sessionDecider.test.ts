import { describe, expect, it } from "vitest";
import { SESSION_INVALID, type SessionCommand } from "../../src/domain/session/decide.ts";
import { accessTokenDecider, sessionDecider } from "../../src/domain/session/decider.ts";
import { AccessTokenIssued, AccessTokenRevoked, SessionRefreshed, SessionRevoked, SessionStarted, type SessionEvent } from "../../src/domain/session/events.ts";
import type { Grant } from "../../src/domain/session/evolve.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const session = deciderSpec(sessionDecider);
const accessToken = deciderSpec(accessTokenDecider);

const grant: Grant = { subject: "ci-runner", kind: "service", roles: ["service"], scopes: [] };
const familyId = "fam-1";
const expiresAt = "2030-01-01T00:00:00.000Z";
const before = "2029-12-01T00:00:00.000Z";

const started = SessionStarted({ familyId, ...grant, refreshTokenId: "r1", accessTokenId: "a1", expiresAt });
const refreshedToR2 = SessionRefreshed({ familyId, previousRefreshTokenId: "r1", refreshTokenId: "r2", accessTokenId: "a2" });
const refreshedToR3 = SessionRefreshed({ familyId, previousRefreshTokenId: "r2", refreshTokenId: "r3", accessTokenId: "a3" });
const revokedForReuse = SessionRevoked({ familyId, reason: "refresh-token-reuse", expiresAt });

const refreshWith = (presentedRefreshTokenId: string, now = before): SessionCommand => ({
  type: "RefreshSession",
  presentedRefreshTokenId,
  refreshTokenId: "r-next",
  accessTokenId: "a-next",
  now,
});

describe("session decider", () => {
  describe("start", () => {
    it("starts a family with its first refresh and access token ids", () =>
      session([])
        .when({ type: "StartSession", familyId, grant, refreshTokenId: "r1", accessTokenId: "a1", expiresAt })
        .then([{ type: "session.started", data: { familyId, ...grant, refreshTokenId: "r1", accessTokenId: "a1", expiresAt } }]));

    it("does not start the same family twice", () =>
      session([started]).when({ type: "StartSession", familyId, grant, refreshTokenId: "r9", accessTokenId: "a9", expiresAt }).thenThrows("CONFLICT"));
  });

  describe("refresh", () => {
    it("rotates the current refresh token", () =>
      session([started])
        .when(refreshWith("r1"))
        .then([{ type: "session.refreshed", data: { familyId, previousRefreshTokenId: "r1", refreshTokenId: "r-next", accessTokenId: "a-next" } }]));

    it("accepts the newest refresh token after several rotations", () =>
      session([started, refreshedToR2, refreshedToR3])
        .when(refreshWith("r3"))
        .then([{ type: "session.refreshed", data: { familyId, previousRefreshTokenId: "r3", refreshTokenId: "r-next", accessTokenId: "a-next" } }]));

    it("revokes the family when a spent refresh token is presented again (reuse)", () =>
      session([started, refreshedToR2])
        .when(refreshWith("r1"))
        .then([{ type: "session.revoked", data: { familyId, reason: "refresh-token-reuse", expiresAt } }]));

    it("revokes the family on reuse of any earlier token, not only the previous one", () =>
      session([started, refreshedToR2, refreshedToR3]).when(refreshWith("r1")).then([revokedForReuse]));

    it("treats a refresh token the family never issued as reuse too", () => session([started]).when(refreshWith("forged-or-foreign")).then([revokedForReuse]));

    it("refuses any refresh after the family was revoked, even with its newest token", () => {
      session([started, refreshedToR2, revokedForReuse]).when(refreshWith("r2")).thenThrows("UNAUTHENTICATED", { message: SESSION_INVALID });
      session([started, refreshedToR2, revokedForReuse]).when(refreshWith("r1")).thenThrows("UNAUTHENTICATED", { message: SESSION_INVALID });
    });

    it("refuses a refresh after an explicit revocation", () =>
      session([started, SessionRevoked({ familyId, reason: "revoked", expiresAt })])
        .when(refreshWith("r1"))
        .thenThrows("UNAUTHENTICATED"));

    it("refuses a refresh of a family that does not exist", () =>
      session([]).when(refreshWith("r1")).thenThrows("UNAUTHENTICATED", { message: SESSION_INVALID }));

    it("refuses a refresh once the family has expired, and at the very instant it expires", () => {
      session([started]).when(refreshWith("r1", "2030-01-01T00:00:00.001Z")).thenThrows("UNAUTHENTICATED");
      session([started]).when(refreshWith("r1", expiresAt)).thenThrows("UNAUTHENTICATED");
    });

    it("does not call an expired family's old token reuse (no revocation is recorded)", () =>
      session([started, refreshedToR2]).when(refreshWith("r1", "2031-01-01T00:00:00.000Z")).thenThrows("UNAUTHENTICATED"));
  });

  describe("revoke", () => {
    it("revokes an active family", () =>
      session([started, refreshedToR2])
        .when({ type: "RevokeSession", reason: "revoked" })
        .then([{ type: "session.revoked", data: { familyId, reason: "revoked", expiresAt } }]));

    it("records nothing when revoking twice", () =>
      session([started, SessionRevoked({ familyId, reason: "revoked", expiresAt })])
        .when({ type: "RevokeSession", reason: "revoked" })
        .thenNothingHappened());

    it("records nothing when revoking a family already revoked for reuse", () =>
      session([started, revokedForReuse]).when({ type: "RevokeSession", reason: "revoked" }).thenNothingHappened());

    it("records nothing when revoking a family that does not exist", () =>
      session([]).when({ type: "RevokeSession", reason: "revoked" }).thenNothingHappened());
  });

  describe("evolve", () => {
    it("follows the current refresh token and the revocation", () => {
      const fold = (events: SessionEvent[]) => stateAfter(sessionDecider, events);
      expect(fold([])).toEqual({ exists: false });
      expect(fold([started])).toEqual({ exists: true, familyId, grant, currentRefreshTokenId: "r1", revoked: false, expiresAt });
      expect(fold([started, refreshedToR2, refreshedToR3])).toMatchObject({ currentRefreshTokenId: "r3", revoked: false });
      expect(fold([started, refreshedToR2, revokedForReuse])).toMatchObject({ currentRefreshTokenId: "r2", revoked: true, expiresAt });
    });

    it("ignores events of a family it never saw start", () => {
      expect(stateAfter(sessionDecider, [refreshedToR2, revokedForReuse])).toEqual({ exists: false });
    });
  });
});

describe("access token decider", () => {
  const tokenId = "tok-1";
  const issued = AccessTokenIssued({ tokenId, ...grant, expiresAt, issuedVia: "api" });

  it("issues a token once", () => {
    accessToken([])
      .when({ type: "IssueAccessToken", tokenId, grant, expiresAt, issuedVia: "api" })
      .then([{ type: "access_token.issued", data: { tokenId, ...grant, expiresAt, issuedVia: "api" } }]);
    accessToken([issued]).when({ type: "IssueAccessToken", tokenId, grant, expiresAt, issuedVia: "api" }).thenThrows("CONFLICT");
  });

  it("revokes until the token's own expiry, whatever fallback the command brings", () =>
    accessToken([issued])
      .when({ type: "RevokeAccessToken", tokenId, reason: "revoked", expiresAt: "2031-06-01T00:00:00.000Z" })
      .then([{ type: "access_token.revoked", data: { tokenId, reason: "revoked", expiresAt } }]));

  it("revokes a token it did not mint (an external issuer's) until the fallback expiry", () =>
    accessToken([])
      .when({ type: "RevokeAccessToken", tokenId: "ext-1", reason: "revoked", expiresAt: "2031-06-01T00:00:00.000Z" })
      .then([{ type: "access_token.revoked", data: { tokenId: "ext-1", reason: "revoked", expiresAt: "2031-06-01T00:00:00.000Z" } }]));

  it("records nothing when revoking twice", () =>
    accessToken([issued, AccessTokenRevoked({ tokenId, reason: "revoked", expiresAt })])
      .when({ type: "RevokeAccessToken", tokenId, reason: "revoked", expiresAt })
      .thenNothingHappened());
});
