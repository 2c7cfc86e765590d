import { systemClock, type Clock } from "./clock.ts";

// The log of the programs that run beside a workload (the token writer, the reference agent): JSON
// lines on stderr, small enough that neither needs pino.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Log = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** JSON lines: {time, level, msg, …fields}. Callers pass only non-secret fields (never a token). */
export function jsonLog(write: (line: string) => void, base: Record<string, unknown>, clock: Pick<Clock, "now"> = systemClock): Log {
  return (level, msg, fields = {}) => {
    const line: Record<string, unknown> = { time: new Date(clock.now()).toISOString(), level, msg, ...base };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line[k] = v;
    write(JSON.stringify(line) + "\n");
  };
}
