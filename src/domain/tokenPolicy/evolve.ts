import type { TokenPolicy } from "../githubToken/policy.ts";
import type { TokenPolicyEvent } from "./events.ts";

export type TokenPolicyState = { exists: false } | { exists: true; policy: TokenPolicy };

export const initialTokenPolicyState = (): TokenPolicyState => ({ exists: false });

export function evolveTokenPolicy(state: TokenPolicyState, event: TokenPolicyEvent): TokenPolicyState {
  if (event.type === "token_policy.set") return { exists: true, policy: event.data as TokenPolicy };
  if (event.type === "token_policy.deleted") return { exists: false };
  return state;
}
