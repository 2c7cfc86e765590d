import type { Decider, StreamName } from "../decider.ts";
import { decideLogStream, type LogStreamCommand } from "./decide.ts";
import type { LogStreamEvent } from "./events.ts";
import { evolveLogStream, initialLogStreamState, type LogStreamState } from "./evolve.ts";

export const logStreamDecider: Decider<LogStreamState, LogStreamCommand, LogStreamEvent> = {
  initialState: initialLogStreamState,
  evolve: evolveLogStream,
  decide: decideLogStream,
};

export const logStreamStream = (logStreamId: string): StreamName => ({ streamType: "log_stream", streamId: logStreamId });
