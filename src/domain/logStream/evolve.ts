import type { LogStreamEvent, LogStreamFilter, LogStreamHealth, LogStreamKind, LogStreamSettings } from "./events.ts";

export type LogStreamState =
  | { exists: false }
  | {
      exists: true;
      deleted: boolean;
      logStreamId: string;
      kind: LogStreamKind;
      name: string;
      destination: string;
      settings: LogStreamSettings;
      filter: LogStreamFilter;
      secretFingerprint: string;
      paused: boolean;
      health: LogStreamHealth;
    };

export const initialLogStreamState = (): LogStreamState => ({ exists: false });

export function evolveLogStream(state: LogStreamState, event: LogStreamEvent): LogStreamState {
  if (event.type === "log_stream.created") {
    const { logStreamId, kind, name, destination, settings, filter, secretFingerprint } = event.data;
    return { exists: true, deleted: false, logStreamId, kind, name, destination, settings, filter, secretFingerprint, paused: false, health: "pending" };
  }
  if (!state.exists) return state;
  switch (event.type) {
    case "log_stream.updated": {
      const { name, destination, settings, filter, secretFingerprint } = event.data;
      // A changed destination starts afresh: its health is unknown until the next delivery.
      return { ...state, name, destination, settings, filter, secretFingerprint, health: state.health === "error" ? "pending" : state.health };
    }
    case "log_stream.secret_rotated":
      return { ...state, secretFingerprint: event.data.secretFingerprint };
    case "log_stream.paused":
      return { ...state, paused: true };
    case "log_stream.resumed":
      return { ...state, paused: false, health: state.health === "error" ? "pending" : state.health };
    case "log_stream.deleted":
      return { ...state, deleted: true };
    case "log_stream.health_changed":
      return { ...state, health: event.data.to };
    case "log_stream.replayed":
      return state;
  }
  return state;
}
