import type { EnrollmentKeyEvent } from "./events.ts";

export type EnrollmentKeyState =
  | { exists: false }
  | { exists: true; keyId: string; reusable: boolean; maxUses: number | null; uses: number; expiresAt: string; revoked: boolean; agentId: string | null };

export const initialEnrollmentKeyState = (): EnrollmentKeyState => ({ exists: false });

export function evolveEnrollmentKey(state: EnrollmentKeyState, event: EnrollmentKeyEvent): EnrollmentKeyState {
  if (event.type === "enrollment_key.created") {
    const d = event.data;
    return { exists: true, keyId: d.keyId, reusable: d.reusable, maxUses: d.maxUses, uses: 0, expiresAt: d.expiresAt, revoked: false, agentId: d.agentId };
  }
  if (!state.exists) return state;
  if (event.type === "enrollment_key.used") return { ...state, uses: event.data.use };
  if (event.type === "enrollment_key.revoked") return { ...state, revoked: true };
  return state;
}
