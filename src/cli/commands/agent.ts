import { UsageError, type CommandGroup } from "../command.ts";

// The reference agent is a program of its own (src/referenceAgent/), loaded only when it runs.
export const agentGroup: CommandGroup = {
  name: "agent",
  usage: `  agent run --server URL [--key kpe_... | --key-file FILE] [--state-dir DIR] [--heartbeat-seconds N]
            [--concurrency N] [--exit-on-unreachable]
                                          the reference agent: enrolls once with the key (credential kept in
                                          DIR, default ./.keyplane-agent, mode 0600; later runs reuse it and
                                          ignore --key), refreshes it, heartbeats (every 30 s), subscribes to
                                          its tasks and runs echo and http-check, reconnecting with backoff.
                                          JSON log lines on stderr, never a token or the key; exit 0 on SIGTERM.
`,
  exitStatus: `agent run also 3 refused (bad enrollment key, dead credential: enroll again), 4 Keyplane unreachable at first
start (only with --exit-on-unreachable; by default it keeps retrying).
`,
  parse([sub, ...rest]) {
    if (sub === "run") return async (config, io) => (await import("../../referenceAgent/run.ts")).runAgentRun(rest, config, io);
    throw new UsageError(sub ? `unknown agent command: ${sub}` : "agent needs a command: run");
  },
};
