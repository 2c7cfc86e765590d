import { describe, it } from "vitest";
import { githubTokenDecider } from "../../src/domain/githubToken/decider.ts";
import { GitHubTokenIssued, GitHubTokenRevoked } from "../../src/domain/githubToken/events.ts";
import { deciderSpec } from "../testkit/deciderSpec.ts";

const given = deciderSpec(githubTokenDecider);

const tokenId = "2d9f0e1a-5b3c-4e7d-8f6a-1c2b3d4e5f60";
const issue = {
  tokenId,
  app: "rex",
  installationId: "i-1",
  githubInstallationId: 4242,
  requester: "agent:a-1",
  policy: "ci-read",
  repositories: ["api"],
  permissions: { contents: "read" },
  fingerprint: "sha256:0123456789abcdef",
  expiresAt: "2026-03-01T13:00:00.000Z",
  cached: false,
};
const issued = GitHubTokenIssued(issue);
const revokedAsked = GitHubTokenRevoked({ tokenId, fingerprint: issue.fingerprint, reason: "requested", revokedAtGitHub: true });

describe("GitHub token decider", () => {
  it("records a token handed out once, by its fingerprint", () => {
    given([])
      .when({ type: "IssueGitHubToken", data: issue })
      .then([{ type: "token.issued", data: issue }]);
    given([issued])
      .when({ type: "IssueGitHubToken", data: issue })
      .thenThrows("CONFLICT", { message: `token ${tokenId} already issued` });
  });

  it("revokes with the issued token's id and fingerprint, whether GitHub was asked or not", () => {
    given([issued]).when({ type: "RevokeGitHubToken", reason: "requested", revokedAtGitHub: true }).then([revokedAsked]);
    given([issued])
      .when({ type: "RevokeGitHubToken", reason: "expired", revokedAtGitHub: false })
      .then([{ type: "token.revoked", data: { tokenId, fingerprint: issue.fingerprint, reason: "expired", revokedAtGitHub: false } }]);
  });

  it("records nothing when revoking twice, and knows no token it did not hand out (NOT_FOUND)", () => {
    given([issued, revokedAsked]).when({ type: "RevokeGitHubToken", reason: "installation_revoked", revokedAtGitHub: false }).thenNothingHappened();
    given([]).when({ type: "RevokeGitHubToken", reason: "requested", revokedAtGitHub: true }).thenThrows("NOT_FOUND");
  });
});
