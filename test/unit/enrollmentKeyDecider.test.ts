import { describe, expect, it } from "vitest";
import type { EnrollmentKeyCommand } from "../../src/domain/enrollmentKey/decide.ts";
import { enrollmentKeyDecider } from "../../src/domain/enrollmentKey/decider.ts";
import { EnrollmentKeyCreated, EnrollmentKeyRevoked, EnrollmentKeyUsed, type EnrollmentKeyEvent } from "../../src/domain/enrollmentKey/events.ts";
import { INVALID_ENROLLMENT_KEY, keyRefusal } from "../../src/domain/enrollmentKey/keyRefusal.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const given = deciderSpec(enrollmentKeyDecider);

const keyId = "6f1c2a9e-8d4b-4c1e-9a57-3b2d1e0f4a11";
const expiresAt = "2026-03-01T13:00:00.000Z";
const before = "2026-03-01T12:00:00.000Z";
const keyData = (over: Partial<Parameters<typeof EnrollmentKeyCreated>[0]> = {}) => ({
  keyId,
  prefix: "abcdefghij",
  keyHash: "a".repeat(64),
  description: "ci runners",
  reusable: false,
  ephemeral: false,
  maxUses: 1,
  tags: ["ci"],
  agentId: null,
  expiresAt,
  ...over,
});
const singleUse = EnrollmentKeyCreated(keyData());
const reusableTwice = EnrollmentKeyCreated(keyData({ reusable: true, maxUses: 2 }));
const unlimited = EnrollmentKeyCreated(keyData({ reusable: true, maxUses: null }));
const used = (use: number, agentId = `agent-${use}`) => EnrollmentKeyUsed({ keyId, agentId, use });
const revoked = EnrollmentKeyRevoked({ keyId });

const use = (agentId: string, now = before): EnrollmentKeyCommand => ({ type: "UseEnrollmentKey", agentId, now });
const REFUSED = { message: INVALID_ENROLLMENT_KEY };

describe("enrollment key decider", () => {
  describe("create", () => {
    it("records the key's facts (its prefix and hash, never the key)", () => {
      given([])
        .when({ type: "CreateEnrollmentKey", data: keyData() })
        .then([{ type: "enrollment_key.created", data: keyData() }]);
    });

    it("does not create the same key twice", () => given([singleUse]).when({ type: "CreateEnrollmentKey", data: keyData() }).thenThrows("CONFLICT"));
  });

  describe("use", () => {
    it("counts each use, naming the agent it enrolled", () => {
      given([singleUse])
        .when(use("agent-1"))
        .then([used(1)]);
      given([reusableTwice, used(1)])
        .when(use("agent-2"))
        .then([used(2)]);
    });

    it("refuses a single-use key the second time, and a reusable one past its uses", () => {
      given([singleUse, used(1)])
        .when(use("agent-2"))
        .thenThrows("UNAUTHENTICATED", REFUSED);
      given([reusableTwice, used(1), used(2)])
        .when(use("agent-3"))
        .thenThrows("UNAUTHENTICATED", REFUSED);
      // A key that is not reusable is used once, whatever its maxUses says.
      given([EnrollmentKeyCreated(keyData({ maxUses: null })), used(1)])
        .when(use("agent-2"))
        .thenThrows("UNAUTHENTICATED", REFUSED);
    });

    it("lets a reusable key without a limit enroll any number of machines", () =>
      given([unlimited, used(1), used(2), used(3)])
        .when(use("agent-4"))
        .then([used(4)]));

    it("refuses an unknown, revoked or expired key with the same answer, at the very instant it expires too", () => {
      given([]).when(use("agent-1")).thenThrows("UNAUTHENTICATED", REFUSED);
      given([singleUse, revoked]).when(use("agent-1")).thenThrows("UNAUTHENTICATED", REFUSED);
      given([singleUse]).when(use("agent-1", expiresAt)).thenThrows("UNAUTHENTICATED", REFUSED);
      given([singleUse]).when(use("agent-1", "2026-03-01T13:00:00.001Z")).thenThrows("UNAUTHENTICATED", REFUSED);
    });
  });

  describe("revoke and prune", () => {
    it("revokes once; revoking again records nothing; an unknown key is NOT_FOUND", () => {
      given([singleUse]).when({ type: "RevokeEnrollmentKey" }).then([revoked]);
      given([singleUse, revoked]).when({ type: "RevokeEnrollmentKey" }).thenNothingHappened();
      given([]).when({ type: "RevokeEnrollmentKey" }).thenThrows("NOT_FOUND");
    });

    it("prunes a key with the reason it is refused; an unknown key is NOT_FOUND", () => {
      given([singleUse, used(1)])
        .when({ type: "PruneEnrollmentKey", reason: "used-up" })
        .then([{ type: "enrollment_key.pruned", data: { keyId, reason: "used-up" } }]);
      given([]).when({ type: "PruneEnrollmentKey", reason: "expired" }).thenThrows("NOT_FOUND");
    });
  });

  describe("keyRefusal (the reason the audit log records)", () => {
    const refusal = (events: EnrollmentKeyEvent[], now = before) => keyRefusal(stateAfter(enrollmentKeyDecider, events), now);

    it("names why a key cannot enroll, revoked before expired before used up", () => {
      expect(refusal([])).toBe("unknown");
      expect(refusal([singleUse, used(1), revoked], expiresAt)).toBe("revoked");
      expect(refusal([singleUse, used(1)], expiresAt)).toBe("expired");
      expect(refusal([singleUse, used(1)])).toBe("used-up");
      expect(refusal([reusableTwice, used(1), used(2)])).toBe("used-up");
    });

    it("has nothing against a key with uses left before it expires", () => {
      expect(refusal([singleUse])).toBeNull();
      expect(refusal([reusableTwice, used(1)])).toBeNull();
      expect(refusal([unlimited, used(1), used(2), used(3)])).toBeNull();
    });
  });
});
