import type { GitHubAppsConfig } from "../config.ts";
import { createLogger, type Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import type { InstallationProvider } from "../providers/provider.ts";
import { createGitHubAppClient, type GitHubAppClientOptions } from "./appClient.ts";
import { GitHubAppConfigError, loadGitHubApps, type WatchedGitHubAppRegistry } from "./appRegistry.ts";
import { createGitHubProvider } from "./installProvider.ts";
import { publicKeyFingerprint } from "./privateKey.ts";
import type { SignerOptions } from "./signers/createSigner.ts";
import { checkSigner } from "./signers/jwtSigner.ts";
import type { GitHubApp, GitHubAppClient } from "./types.ts";

// Every configured GitHub App with its client (installation tokens) and its install provider, built
// once at start from config.githubApps. Each client and provider reads its app through the registry on
// every call, so a rotated key or secret is used without a restart.
//
// An app whose key is in an HSM or KMS is checked at once, in the background: `ready` resolves when
// every such key was found, is RSA of 2048 bits or more, and signed a probe that verified (its
// fingerprint is logged), or rejects with a GitHubAppConfigError naming the app and the problem. A
// process that should not start without its keys awaits it.

export interface GitHubAppsHandle {
  registry: WatchedGitHubAppRegistry;
  client(name: string): GitHubAppClient | undefined;
  provider(name: string): InstallationProvider | undefined;
  /** The app installs use when none is named: the only app, else "default", else the first by name. */
  defaultApp?: string;
  /** Every app's signer checked (see above); rejects with a GitHubAppConfigError naming the first app that failed. */
  ready: Promise<void>;
  /** Stops watching mounted files and closes the signers (PKCS#11 sessions, KMS clients). */
  close(): Promise<void>;
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
  /** Settings of the signers' clients (tests: the AWS SDK's credentials). */
  signers?: SignerOptions;
}

/** Throws GitHubAppConfigError (a ConfigError) naming the app and the problem when an app is unusable. */
export function createGitHubApps(config: GitHubAppsConfig, deps: GitHubAppsDeps = {}): GitHubAppsHandle {
  const logger = deps.logger ?? createLogger({ level: "silent" });
  const registry = loadGitHubApps({ env: config.env, dir: config.dir, pollSeconds: config.pollSeconds }, { logger, watch: deps.watch, signers: deps.signers });
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
    if (app.privateKey)
      logger.info(
        { app: name, appId: app.appId, slug: app.slug, signer: "memory", keyFingerprint: publicKeyFingerprint(app.privateKey) },
        `GitHub App ${name} configured`,
      );
    else logger.info({ app: name, appId: app.appId, slug: app.slug, signer: app.signer?.kind }, `GitHub App ${name} configured; checking ${app.signer?.where}`);
  }
  const names = registry.names();
  const defaultApp = names.length === 1 ? names[0] : names.includes("default") ? "default" : names[0];
  const ready = checkSigners(registry, logger);
  // A caller that does not wait still hears of a failure: it is logged, never an unhandled rejection.
  ready.catch(() => {});
  return {
    registry,
    client: (name) => clients.get(name),
    provider: (name) => providers.get(name),
    defaultApp,
    ready,
    close: () => registry.close(),
  };
}

/** Checks every app whose key is not in memory (one after another: an HSM serves one session at a time well). */
async function checkSigners(registry: WatchedGitHubAppRegistry, logger: Logger): Promise<void> {
  for (const name of registry.names()) {
    const app = registry.get(name)!;
    if (!app.signer || app.privateKey) continue;
    try {
      const { keyFingerprint, bits } = await checkSigner(app.signer);
      logger.info({ app: name, appId: app.appId, signer: app.signer.kind, keyFingerprint, bits }, `GitHub App ${name}: ${app.signer.where} is ready`);
    } catch (error) {
      const problem = error instanceof Error ? error.message : "its signer does not work";
      logger.error({ app: name, signer: app.signer.kind, problem }, `GitHub App ${name}: its signer does not work: ${problem}`);
      throw new GitHubAppConfigError(name, problem);
    }
  }
}
