import { createLogger } from "../logger.ts";
import { type AppRequesterOptions, type AppSource, createAppRequester } from "./appRequester.ts";
import { createCaller, type CallerOptions, type RetryPolicy } from "./callWithRetries.ts";
import { mintInstallationToken } from "./mintInstallationToken.ts";
import { createInstallationResolver, type InstallationResolverOptions } from "./resolveInstallation.ts";
import { revokeInstallationToken } from "./revokeInstallationToken.ts";
import type { GitHubAppClient } from "./types.ts";

// One named GitHub App's view of the GitHub API, the installation-token client: installation tokens
// (mintInstallationToken.ts; no caching here: the caller caches), installation discovery
// (resolveInstallation.ts, cached), token revocation (revokeInstallationToken.ts). Every call goes
// through the app's requester (appRequester.ts: app JWT, clock skew, metrics) under Keyplane's retry
// policy (callWithRetries.ts), and ends, when it fails, in Keyplane's codes (githubAppErrors.ts).

export interface GitHubAppClientOptions extends AppRequesterOptions {
  /** Timeout of each HTTP attempt; also the deadline of a call that names none. */
  timeoutMs: number;
  /** Waits between attempts (backoff, Retry-After). Tests pass a fast one. */
  sleep?: CallerOptions["sleep"];
  /** Default 5 attempts, 500 ms base, 5 s cap. */
  retry?: RetryPolicy;
  /** How long a discovered installation id is reused (default 10 minutes), and how many are kept (default 1000). */
  discovery?: InstallationResolverOptions;
  /** Keyplane's clock for what the client caches (deadlines and backoff stay on real time). */
  now?: () => Date;
}

/**
 * `createGitHubAppClient(app, options)`: `app` is a GitHubApp or a getter of the current one (the
 * registry's latest, so rotated keys are used at once).
 */
export function createGitHubAppClient(source: AppSource, options: GitHubAppClientOptions): GitHubAppClient {
  const requester = createAppRequester(source, options);
  const logger = options.logger ?? createLogger({ level: "silent" });
  const call = createCaller({ app: () => requester.app().name, logger, sleep: options.sleep, retry: options.retry });
  const resolver = createInstallationResolver(requester, call, { now: options.now, ...options.discovery });
  const deadlineOf = (deadline: number | undefined) => deadline ?? Date.now() + options.timeoutMs;

  return {
    get app() {
      return requester.app().name;
    },
    resolveInstallation: async (target, deadline) => resolver.resolve(target, deadlineOf(deadline)),
    mint: (request) => mintInstallationToken({ requester, call, forgetInstallation: resolver.forget }, request, deadlineOf(request.deadline)),
    revokeToken: (token) => revokeInstallationToken({ requester, call }, token, deadlineOf(undefined)),
  };
}
