import { ConflictError, NotFoundError, UnauthenticatedError } from "../../errors.ts";
import { EnrollmentKeyCreated, EnrollmentKeyPruned, EnrollmentKeyRevoked, EnrollmentKeyUsed, type EnrollmentKeyEvent } from "./events.ts";
import type { EnrollmentKeyState } from "./evolve.ts";
import { INVALID_ENROLLMENT_KEY, keyRefusal } from "./keyRefusal.ts";

export type EnrollmentKeyCommand =
  | { type: "CreateEnrollmentKey"; data: Parameters<typeof EnrollmentKeyCreated>[0] }
  | { type: "UseEnrollmentKey"; agentId: string; now: string }
  | { type: "RevokeEnrollmentKey" }
  | { type: "PruneEnrollmentKey"; reason: string };

export function decideEnrollmentKey(command: EnrollmentKeyCommand, state: EnrollmentKeyState): EnrollmentKeyEvent[] {
  switch (command.type) {
    case "CreateEnrollmentKey":
      if (state.exists) throw new ConflictError("enrollment key exists");
      return [EnrollmentKeyCreated(command.data)];
    case "UseEnrollmentKey":
      if (keyRefusal(state, command.now) || !state.exists) throw new UnauthenticatedError(INVALID_ENROLLMENT_KEY);
      return [EnrollmentKeyUsed({ keyId: state.keyId, agentId: command.agentId, use: state.uses + 1 })];
    case "RevokeEnrollmentKey":
      if (!state.exists) throw new NotFoundError("enrollment key");
      return state.revoked ? [] : [EnrollmentKeyRevoked({ keyId: state.keyId })];
    case "PruneEnrollmentKey":
      if (!state.exists) throw new NotFoundError("enrollment key");
      return [EnrollmentKeyPruned({ keyId: state.keyId, reason: command.reason })];
  }
}
