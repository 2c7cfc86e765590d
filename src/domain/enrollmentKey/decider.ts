import type { Decider, StreamName } from "../decider.ts";
import { decideEnrollmentKey, type EnrollmentKeyCommand } from "./decide.ts";
import type { EnrollmentKeyEvent } from "./events.ts";
import { evolveEnrollmentKey, initialEnrollmentKeyState, type EnrollmentKeyState } from "./evolve.ts";

export const enrollmentKeyDecider: Decider<EnrollmentKeyState, EnrollmentKeyCommand, EnrollmentKeyEvent> = {
  initialState: initialEnrollmentKeyState,
  evolve: evolveEnrollmentKey,
  decide: decideEnrollmentKey,
};

/** Each key is its own stream: its version decides two machines racing on one single-use key. */
export const enrollmentKeyStream = (keyId: string): StreamName => ({ streamType: "enrollment_key", streamId: keyId });
