import type { Decider, StreamName } from "../decider.ts";
import { decideIdentity, type IdentityCommand } from "./decide.ts";
import type { IdentityEvent } from "./events.ts";
import { evolveIdentity, initialIdentityState, type IdentityState } from "./evolve.ts";

export const identityDecider: Decider<IdentityState, IdentityCommand, IdentityEvent> = {
  initialState: initialIdentityState,
  evolve: evolveIdentity,
  decide: decideIdentity,
};

export const identityStream = (identityId: string): StreamName => ({ streamType: "identity", streamId: identityId });
/** A link request (the OAuth state's record) has a stream of its own, like an installation request. */
export const identityLinkRequestStream = (requestId: string): StreamName => ({ streamType: "identity_link_request", streamId: requestId });
