import { describe, expect, it } from "vitest";
import type { InstallationCommand } from "../../src/domain/installation/decide.ts";
import { installationDecider } from "../../src/domain/installation/decider.ts";
import type { InstallationEvent } from "../../src/domain/installation/events.ts";
import { statusOf } from "../../src/domain/installation/evolve.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const given = deciderSpec(installationDecider);
const stateOf = (events: InstallationEvent[]) => stateAfter(installationDecider, events);

const info = { externalId: "42", account: { id: "7", login: "acme", type: "Organization" }, permissions: { contents: "read" }, scopes: [] };
const created: InstallationEvent = { type: "installation.created", data: { installationId: "i-1", platform: "github", ...info } };
const suspendedBy = (by: "tenant" | "provider"): InstallationEvent => ({ type: "installation.suspended", data: { installationId: "i-1", by } });
const nextAttemptAt = "2026-01-01T00:00:00Z";

describe("installation decider", () => {
  it("creates once; anything else on a missing installation is NOT_FOUND", () => {
    given([]).when({ type: "CreateInstallation", installationId: "i-1", platform: "github", info }).then([created]);
    given([created]).when({ type: "CreateInstallation", installationId: "i-1", platform: "github", info }).thenThrows("CONFLICT");
    given([]).when({ type: "SuspendInstallation", by: "tenant" }).thenThrows("NOT_FOUND");
  });

  it("keeps the tenant's and the provider's suspensions apart: each side lifts only its own", () => {
    const both = [created, suspendedBy("provider"), suspendedBy("tenant")];
    const afterTenantResume = [...both, { type: "installation.resumed", data: { installationId: "i-1", by: "tenant" } } as InstallationEvent];
    const state = stateOf(afterTenantResume);
    expect(state.exists && statusOf(state)).toBe("suspended");
    // The tenant cannot lift GitHub's suspension.
    given([created, suspendedBy("provider")])
      .when({ type: "ResumeInstallation", by: "tenant" })
      .thenThrows("CONFLICT", { message: /suspended at the provider/ });
    // Suspending twice records nothing.
    given([created, suspendedBy("tenant")])
      .when({ type: "SuspendInstallation", by: "tenant" })
      .thenNothingHappened();
  });

  it("hands out credentials only while active", () => {
    given([created])
      .when({ type: "ReadCredentials", fingerprint: "sha256:ab" })
      .then([{ type: "credentials.read", data: { installationId: "i-1", platform: "github", fingerprint: "sha256:ab" } }]);
    given([created, suspendedBy("tenant")])
      .when({ type: "ReadCredentials", fingerprint: "sha256:ab" })
      .thenThrows("CONFLICT", { message: /suspended/ });
    const needsReauth: InstallationEvent = { type: "installation.needs_reauth", data: { installationId: "i-1", providerCode: "invalid_grant" } };
    given([created, needsReauth])
      .when({ type: "ReadCredentials", fingerprint: "sha256:ab" })
      .thenThrows("CONFLICT", { message: /needs reauth/ });
  });

  it("counts transient refresh failures and turns a rejection into needs_reauth once", () => {
    const transient: InstallationCommand = { type: "RecordRefreshFailure", providerCode: "server_error", rejected: false, nextAttemptAt };
    const failedOnce: InstallationEvent = {
      type: "installation.refresh_failed",
      data: { installationId: "i-1", providerCode: "server_error", attempt: 1, nextAttemptAt },
    };
    given([created]).when(transient).then([failedOnce]);
    given([created, failedOnce])
      .when(transient)
      .then([{ type: "installation.refresh_failed", data: { installationId: "i-1", providerCode: "server_error", attempt: 2, nextAttemptAt } }]);
    const rejection: InstallationCommand = { type: "RecordRefreshFailure", providerCode: "invalid_grant", rejected: true, nextAttemptAt };
    const needsReauth: InstallationEvent = { type: "installation.needs_reauth", data: { installationId: "i-1", providerCode: "invalid_grant" } };
    given([created]).when(rejection).then([needsReauth]);
    given([created, needsReauth]).when(rejection).thenNothingHappened();
    // Re-authorizing clears it.
    const reauthorized: InstallationEvent = { type: "installation.reauthorized", data: { installationId: "i-1", ...info } };
    const state = stateOf([created, needsReauth, reauthorized]);
    expect(state.exists && statusOf(state)).toBe("active");
  });

  it("refuses a re-authorization for another account", () => {
    given([created])
      .when({ type: "ReauthorizeInstallation", info: { ...info, externalId: "43" } })
      .thenThrows("CONFLICT", { message: /different account/ });
  });

  it("makes revocation final: revoking again records nothing, everything else is CONFLICT", () => {
    const revoked: InstallationEvent = { type: "installation.revoked", data: { installationId: "i-1", by: "tenant", providerRevoked: true } };
    given([created, revoked]).when({ type: "RevokeInstallation", by: "provider", providerRevoked: true }).thenNothingHappened();
    for (const command of [
      { type: "ResumeInstallation", by: "tenant" },
      { type: "ReadCredentials", fingerprint: "x" },
      { type: "ChangeRepositories", added: ["a/b"], removed: [] },
    ] as InstallationCommand[]) {
      given([created, revoked]).when(command).thenThrows("CONFLICT");
    }
  });
});
