import type { Decider, StreamName } from "../decider.ts";
import { decideInstallation, type InstallationCommand } from "./decide.ts";
import type { InstallationEvent } from "./events.ts";
import { evolveInstallation, initialInstallationState, type InstallationState } from "./evolve.ts";

export const installationDecider: Decider<InstallationState, InstallationCommand, InstallationEvent> = {
  initialState: initialInstallationState,
  evolve: evolveInstallation,
  decide: decideInstallation,
};

/** Each installation is its own stream; its id is a Keyplane UUID, not the provider's id. */
export const installationStream = (installationId: string): StreamName => ({ streamType: "installation", streamId: installationId });
