import type { CommandGroup } from "../command.ts";

// The token writer is a program of its own (src/tokenWriter/), loaded only when it runs; it reads its
// command line itself.
export const githubTokenGroup: CommandGroup = {
  name: "github-token",
  usage: `  github-token --app NAME --output FILE [--installation-id N | --owner LOGIN | --repository OWNER/NAME]
               [--repositories NAME[,NAME...]...] [--permission NAME=read|write|admin...]
               [--keyplane-url URL --token-file FILE] [--watch] [--health-port PORT] [--timeout SECONDS]
                                          write a GitHub App installation token for a workload to FILE
                                          (the token alone, no trailing newline; mode 0600; atomic rename).
                                          With --keyplane-url it asks Keyplane with the service token in
                                          --token-file (re-read each time; recommended: no app key in the
                                          workload); without, it mints with the app key from
                                          GITHUB_APP_<NAME>_* or GITHUB_APPS_DIR/<name>/. --repository alone
                                          limits the token to that repository. --watch keeps FILE fresh
                                          (5-10 min before expiry, retries, never removes the last good
                                          token; exit 0 on SIGTERM); /healthz on --health-port is 200 while
                                          FILE's token has 5 min left. JSON log lines on stderr, never the token.
`,
  exitStatus: `github-token also 3 refused by GitHub or Keyplane, 4 GitHub or Keyplane unreachable (network, timeout, 5xx);
`,
  parse(args) {
    return async (config, io) => (await import("../../tokenWriter/run.ts")).runGitHubToken(args, config, io);
  },
};
