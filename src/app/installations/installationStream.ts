import { decideInstallation } from "../../domain/installation/decide.ts";
import { evolveInstallation, initialInstallationState } from "../../domain/installation/evolve.ts";

export const installationDecider = { initialState: initialInstallationState, evolve: evolveInstallation, decide: decideInstallation };

/** Each installation is its own stream; its id is a Keyplane UUID, not the provider's id. */
export const installationStream = (installationId: string) => ({ streamType: "installation", streamId: installationId });
