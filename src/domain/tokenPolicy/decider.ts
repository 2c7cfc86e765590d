import type { Decider, StreamName } from "../decider.ts";
import { decideTokenPolicy, type TokenPolicyCommand } from "./decide.ts";
import type { TokenPolicyEvent } from "./events.ts";
import { evolveTokenPolicy, initialTokenPolicyState, type TokenPolicyState } from "./evolve.ts";

export const tokenPolicyDecider: Decider<TokenPolicyState, TokenPolicyCommand, TokenPolicyEvent> = {
  initialState: initialTokenPolicyState,
  evolve: evolveTokenPolicy,
  decide: decideTokenPolicy,
};

/** A policy's stream is named by the policy's name (unique in its tenant): setting it again replaces it. */
export const tokenPolicyStream = (name: string): StreamName => ({ streamType: "token_policy", streamId: name });
