import { describe, expect, it } from "vitest";
import { decideInstallation, type InstallationCommand } from "../../src/domain/installation/decide.ts";
import type { InstallationEvent } from "../../src/domain/installation/events.ts";
import { evolveInstallation, initialInstallationState, statusOf } from "../../src/domain/installation/evolve.ts";
import { ConflictError, NotFoundError } from "../../src/errors.ts";

// Given events, when a command, then events (or an error): no database involved.
const info = { externalId: "42", account: { id: "7", login: "acme", type: "Organization" }, permissions: { contents: "read" }, scopes: [] };
const created: InstallationEvent = { type: "installation.created", data: { installationId: "i-1", platform: "github", ...info } };
const stateOf = (events: InstallationEvent[]) => events.reduce(evolveInstallation, initialInstallationState());
const given = (...events: InstallationEvent[]) => ({
  when: (command: InstallationCommand) => () => decideInstallation(command, stateOf(events)),
  then: (command: InstallationCommand) => decideInstallation(command, stateOf(events)),
});
const suspendedBy = (by: "tenant" | "provider"): InstallationEvent => ({ type: "installation.suspended", data: { installationId: "i-1", by } });

describe("installation decider", () => {
  it("creates once; anything else on a missing installation is NOT_FOUND", () => {
    expect(given().then({ type: "CreateInstallation", installationId: "i-1", platform: "github", info })).toEqual([created]);
    expect(given(created).when({ type: "CreateInstallation", installationId: "i-1", platform: "github", info })).toThrow(ConflictError);
    expect(given().when({ type: "SuspendInstallation", by: "tenant" })).toThrow(NotFoundError);
  });

  it("keeps the tenant's and the provider's suspensions apart: each side lifts only its own", () => {
    const both = [created, suspendedBy("provider"), suspendedBy("tenant")];
    const afterTenantResume = [...both, { type: "installation.resumed", data: { installationId: "i-1", by: "tenant" } } as InstallationEvent];
    const state = stateOf(afterTenantResume);
    expect(state.exists && statusOf(state)).toBe("suspended");
    // The tenant cannot lift GitHub's suspension.
    expect(given(created, suspendedBy("provider")).when({ type: "ResumeInstallation", by: "tenant" })).toThrow(/suspended at the provider/);
    // Suspending twice records nothing.
    expect(given(created, suspendedBy("tenant")).then({ type: "SuspendInstallation", by: "tenant" })).toEqual([]);
  });

  it("hands out credentials only while active", () => {
    expect(given(created).then({ type: "ReadCredentials", fingerprint: "sha256:ab" })[0]?.type).toBe("credentials.read");
    expect(given(created, suspendedBy("tenant")).when({ type: "ReadCredentials", fingerprint: "sha256:ab" })).toThrow(/suspended/);
    const needsReauth: InstallationEvent = { type: "installation.needs_reauth", data: { installationId: "i-1", providerCode: "invalid_grant" } };
    expect(given(created, needsReauth).when({ type: "ReadCredentials", fingerprint: "sha256:ab" })).toThrow(/needs reauth/);
  });

  it("counts transient refresh failures and turns a rejection into needs_reauth once", () => {
    const failed = given(created).then({ type: "RecordRefreshFailure", providerCode: "server_error", rejected: false, nextAttemptAt: "2026-01-01T00:00:00Z" });
    expect(failed).toEqual([{ type: "installation.refresh_failed", data: { installationId: "i-1", providerCode: "server_error", attempt: 1, nextAttemptAt: "2026-01-01T00:00:00Z" } }]);
    expect(given(created, failed[0]!).then({ type: "RecordRefreshFailure", providerCode: "server_error", rejected: false, nextAttemptAt: "2026-01-01T00:00:00Z" })[0]?.data).toMatchObject({ attempt: 2 });
    const rejected = given(created).then({ type: "RecordRefreshFailure", providerCode: "invalid_grant", rejected: true, nextAttemptAt: "2026-01-01T00:00:00Z" });
    expect(rejected.map((e) => e.type)).toEqual(["installation.needs_reauth"]);
    expect(given(created, rejected[0]!).then({ type: "RecordRefreshFailure", providerCode: "invalid_grant", rejected: true, nextAttemptAt: "2026-01-01T00:00:00Z" })).toEqual([]);
    // Re-authorizing clears it.
    const reauthorized: InstallationEvent = { type: "installation.reauthorized", data: { installationId: "i-1", ...info } };
    const state = stateOf([created, rejected[0]!, reauthorized]);
    expect(state.exists && statusOf(state)).toBe("active");
  });

  it("refuses a re-authorization for another account", () => {
    expect(given(created).when({ type: "ReauthorizeInstallation", info: { ...info, externalId: "43" } })).toThrow(/different account/);
  });

  it("makes revocation final: revoking again records nothing, everything else is CONFLICT", () => {
    const revoked: InstallationEvent = { type: "installation.revoked", data: { installationId: "i-1", by: "tenant", providerRevoked: true } };
    expect(given(created, revoked).then({ type: "RevokeInstallation", by: "provider", providerRevoked: true })).toEqual([]);
    for (const command of [{ type: "ResumeInstallation", by: "tenant" }, { type: "ReadCredentials", fingerprint: "x" }, { type: "ChangeRepositories", added: ["a/b"], removed: [] }] as InstallationCommand[]) {
      expect(given(created, revoked).when(command)).toThrow(ConflictError);
    }
  });
});
