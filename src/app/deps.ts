import type { AuditSigner } from "../audit/auditSignatures.ts";
import type { TokenWatch } from "../auth/tokenWatch.ts";
import type { TokenMinter } from "../auth/tokenMinter.ts";
import type { TokenVerifier } from "../auth/verifyToken.ts";
import type { Config } from "../config.ts";
import type { Keyring } from "../crypto/keyring.ts";
import type { RateLimits } from "../limits/rateLimits.ts";
import type { GitHubApps } from "../github/types.ts";
import type { Metrics } from "../metrics.ts";
import type { AuthenticationCache } from "../runtime/authenticationCache.ts";
import type { EventFeed } from "../runtime/eventFeed.ts";
import type { TokenCache } from "../runtime/githubTokenCache.ts";
import type { InstallationProvider, Platform } from "../providers/provider.ts";
import type { Logger } from "../logger.ts";
import type { Db } from "../store/db.ts";
import type { SecurityRecorder } from "./recordSecurityEvent.ts";

/** Everything use cases may reach. Each use case names the part it needs with Pick<>. */
export interface AppDeps {
  db: Db;
  config: Config;
  logger: Logger;
  minter: TokenMinter;
  verifier: TokenVerifier;
  /** Token standing (revocations, tenant status and tier) kept in memory, kept fresh: see src/runtime/authenticationCache.ts. */
  standing: AuthenticationCache;
  security: SecurityRecorder;
  /**
   * The clock every use case, periodic job and expiry check reads (createKeyplane's `now` option: the
   * system clock, or a test's clock that advances instead of sleeping). Events take their occurredAt from it.
   */
  now: () => Date;
  /** Encrypts credentials at rest. */
  keyring: Keyring;
  /** The platforms configured on this Keyplane. */
  providers: Partial<Record<Platform, InstallationProvider>>;
  /** Named GitHub Apps: their clients for installation tokens and their install providers. */
  githubApps: GitHubApps;
  /** Per-process GitHub token cache with single-flight. */
  tokenCache: TokenCache;
  metrics: Metrics;
  /** Signs audit checkpoints and export end lines with Keyplane's current signing key. */
  auditSigner: AuditSigner;
  /** Named rate-limit policies over the shared limit store (src/limits). */
  limits: RateLimits;
  /** Each tenant's log, replayed and then live, for subscribers of this process. */
  events: EventFeed;
  /** Ends WebSockets and SSE subscriptions whose token is revoked or expires. */
  tokenWatch: TokenWatch;
}
