import type { EnrollmentKeyState } from "./evolve.ts";

/** One message for every refused key: which check failed goes to the audit log, not to the caller. */
export const INVALID_ENROLLMENT_KEY = "invalid, expired or used enrollment key";

/** Why a key cannot enroll a machine at `now` (the audit log's reason), or null when it can. */
export function keyRefusal(state: EnrollmentKeyState, now: string): string | null {
  if (!state.exists) return "unknown";
  if (state.revoked) return "revoked";
  if (state.expiresAt <= now) return "expired";
  const limit = state.reusable ? state.maxUses : 1;
  if (limit !== null && state.uses >= limit) return "used-up";
  return null;
}
