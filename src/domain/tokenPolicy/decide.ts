import { isDeepStrictEqual } from "node:util";
import { NotFoundError } from "../../errors.ts";
import type { TokenPolicy } from "../githubToken/policy.ts";
import { TokenPolicyDeleted, TokenPolicySet, type TokenPolicyEvent } from "./events.ts";
import type { TokenPolicyState } from "./evolve.ts";

export type TokenPolicyCommand = { type: "SetTokenPolicy"; policy: TokenPolicy } | { type: "DeleteTokenPolicy"; name: string };

export function decideTokenPolicy(command: TokenPolicyCommand, state: TokenPolicyState): TokenPolicyEvent[] {
  switch (command.type) {
    case "SetTokenPolicy":
      // Setting the same policy again records nothing.
      if (state.exists && isDeepStrictEqual(state.policy, command.policy)) return [];
      return [TokenPolicySet(command.policy)];
    case "DeleteTokenPolicy":
      if (!state.exists) throw new NotFoundError(`token policy ${command.name}`);
      return [TokenPolicyDeleted({ name: command.name })];
  }
}
