import type { GitHubAppsConfig } from "../config.ts";
import { createLogger, type Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import type { InstallationProvider } from "../providers/provider.ts";
import { createGitHubAppClient, type GitHubAppClientOptions } from "./appClient.ts";
import { loadGitHubApps, type WatchedGitHubAppRegistry } from "./appRegistry.ts";
import { createGitHubProvider } from "./installProvider.ts";
import { publicKeyFingerprint } from "./privateKey.ts";
import type { GitHubApp, GitHubAppClient } from "./types.ts";

// Every configured GitHub App with its client (installation tokens) and its install provider, built
// once at start from config.githubApps. Each client and provider reads its app through the registry on
// every call, so a rotated key or secret is used without a restart.

export interface GitHubAppsHandle {
  registry: WatchedGitHubAppRegistry;
  client(name: string): GitHubAppClient | undefined;
  provider(name: string): InstallationProvider | undefined;
  /** The app installs use when none is named: the only app, else "default", else the first by name. */
  defaultApp?: string;
  /** Stops watching mounted files. */
  close(): void;
}

export interface GitHubAppsDeps {
  logger?: Logger;
  metrics?: Metrics;
  /** Tests: a fetch for every client and provider, fast sleeps, retry and discovery settings. */
  fetch?: typeof fetch;
  sleep?: GitHubAppClientOptions["sleep"];
  retry?: GitHubAppClientOptions["retry"];
  /** Re-read mounted files while running (default true). */
  watch?: boolean;
  /** Keyplane's clock (deps.now). */
  now?: () => Date;
}

/** Throws GitHubAppConfigError (a ConfigError) naming the app and the problem when an app is unusable. */
export function createGitHubApps(config: GitHubAppsConfig, deps: GitHubAppsDeps = {}): GitHubAppsHandle {
  const logger = deps.logger ?? createLogger({ level: "silent" });
  const registry = loadGitHubApps({ env: config.env, dir: config.dir, pollSeconds: config.pollSeconds }, { logger, watch: deps.watch });
  const clients = new Map<string, GitHubAppClient>();
  const providers = new Map<string, InstallationProvider>();
  for (const name of registry.names()) {
    // Apps are never dropped from the registry (a broken rotation keeps the previous values).
    const current = (): GitHubApp => registry.get(name)!;
    const options = {
      apiUrl: config.apiUrl,
      timeoutMs: config.timeoutMs,
      metrics: deps.metrics,
      logger,
      fetch: deps.fetch,
      sleep: deps.sleep,
      retry: deps.retry,
      now: deps.now,
    };
    const client = createGitHubAppClient(current, options);
    clients.set(name, client);
    providers.set(
      name,
      createGitHubProvider(current, client, {
        apiUrl: config.apiUrl,
        webUrl: config.webUrl,
        timeoutMs: config.timeoutMs,
        metrics: deps.metrics,
        logger,
        fetch: deps.fetch,
      }),
    );
    const app = current();
    logger.info({ app: name, appId: app.appId, slug: app.slug, keyFingerprint: publicKeyFingerprint(app.privateKey) }, `GitHub App ${name} configured`);
  }
  const names = registry.names();
  const defaultApp = names.length === 1 ? names[0] : names.includes("default") ? "default" : names[0];
  return {
    registry,
    client: (name) => clients.get(name),
    provider: (name) => providers.get(name),
    defaultApp,
    close: () => registry.close(),
  };
}
