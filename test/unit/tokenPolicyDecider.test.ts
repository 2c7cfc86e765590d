import { describe, it } from "vitest";
import type { TokenPolicy } from "../../src/domain/githubToken/policy.ts";
import { tokenPolicyDecider } from "../../src/domain/tokenPolicy/decider.ts";
import { TokenPolicyDeleted, TokenPolicySet } from "../../src/domain/tokenPolicy/events.ts";
import { deciderSpec } from "../testkit/deciderSpec.ts";

const given = deciderSpec(tokenPolicyDecider);

const policy: TokenPolicy = {
  name: "ci-read",
  app: "rex",
  roles: ["service"],
  subjects: [],
  agentTags: ["ci"],
  repositories: ["acme/api", "acme/web-*"],
  permissions: { contents: "read" },
};
const set = TokenPolicySet(policy);
const deleted = TokenPolicyDeleted({ name: "ci-read" });

describe("token policy decider", () => {
  it("sets a new policy", () =>
    given([])
      .when({ type: "SetTokenPolicy", policy })
      .then([{ type: "token_policy.set", data: policy }]));

  it("records nothing when the same policy is set again, and the whole policy when any part changed", () => {
    given([set])
      .when({ type: "SetTokenPolicy", policy: { ...policy } })
      .thenNothingHappened();
    const wider = { ...policy, permissions: { contents: "write" as const } };
    given([set])
      .when({ type: "SetTokenPolicy", policy: wider })
      .then([{ type: "token_policy.set", data: wider }]);
    const moreRepositories = { ...policy, repositories: [...policy.repositories, "acme/docs"] };
    given([set])
      .when({ type: "SetTokenPolicy", policy: moreRepositories })
      .then([{ type: "token_policy.set", data: moreRepositories }]);
  });

  it("deletes a policy that exists; one that does not, or no longer does, is NOT_FOUND", () => {
    given([set])
      .when({ type: "DeleteTokenPolicy", name: "ci-read" })
      .then([{ type: "token_policy.deleted", data: { name: "ci-read" } }]);
    given([]).when({ type: "DeleteTokenPolicy", name: "ci-read" }).thenThrows("NOT_FOUND", { message: "token policy ci-read not found" });
    given([set, deleted]).when({ type: "DeleteTokenPolicy", name: "ci-read" }).thenThrows("NOT_FOUND");
  });

  it("sets a deleted policy again as new, even unchanged", () => given([set, deleted]).when({ type: "SetTokenPolicy", policy }).then([set]));
});
