import { UsageError, type CommandGroup } from "../command.ts";

// The reference agent is a program of its own (src/referenceAgent/), loaded only when it runs.
export const agentGroup: CommandGroup = {
  name: "agent",
  usage: `  agent run --server URL [--key kpe_... | --key-file FILE] [--state-dir DIR] [--heartbeat-seconds N]
            [--concurrency N] [--exit-on-unreachable]
                                          the reference agent: enrolls once with the key (credential kept in
                                          DIR, default ./.keyplane-agent, mode 0600; later runs reuse it and
                                          ignore --key), refreshes it, heartbeats (every 30 s), subscribes to
                                          its tasks and runs echo, http-check, github-fork, github-commit,
                                          github-pull-request and github-contribute, reconnecting with backoff.
                                          JSON log lines on stderr, never a token or the key; exit 0 on SIGTERM.
  agent link-github [--state-dir DIR] [--app NAME] [--server URL] [--no-wait]
                                          links the GitHub account the agent in DIR acts as (its GitHub tasks):
                                          prints a URL to open in a browser signed in to that account, then
                                          waits until GitHub came back to Keyplane and prints "linked as <login>".
`,
  exitStatus: `agent run also 3 refused (bad enrollment key, dead credential: enroll again), 4 Keyplane unreachable at first
start (only with --exit-on-unreachable; by default it keeps retrying). agent link-github: 1 not linked before the
link expired, 3 refused, 4 Keyplane unreachable.
`,
  parse([sub, ...rest]) {
    if (sub === "run") return async (config, io) => (await import("../../referenceAgent/run.ts")).runAgentRun(rest, config, io);
    if (sub === "link-github") return async (config, io) => (await import("../../referenceAgent/linkGithub.ts")).runAgentLinkGithub(rest, config, io);
    throw new UsageError(sub ? `unknown agent command: ${sub}` : "agent needs a command: run or link-github");
  },
};
