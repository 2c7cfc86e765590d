import type { KeyObject } from "node:crypto";
import type { JwtSigner } from "./signers/jwtSigner.ts";

// The named GitHub Apps Keyplane mints installation tokens for (rex, clippy, qa, …) and the client
// each one gets. Implementations: appRegistry.ts (env and mounted secret files) and appClient.ts.

export interface GitHubApp {
  /** Lower-case name: `rex` from GITHUB_APP_REX_ID or GITHUB_APPS_DIR/rex/. */
  name: string;
  /** Numeric app id, or the app's client id (both are valid JWT issuers). */
  appId: string;
  slug?: string;
  /**
   * Signs the app's JWTs (RS256): the key in memory, on a PKCS#11 token or in AWS KMS
   * (src/github/signers). The registry always sets it; an app built with only `privateKey` signs with that.
   */
  signer?: JwtSigner;
  /** The RS256 private key, for the memory signer only (absent when the key is in an HSM or KMS); the PEM text is never kept. */
  privateKey?: KeyObject;
  webhookSecret?: string;
  clientId?: string;
  clientSecret?: string;
}

export interface GitHubAppRegistry {
  names(): string[];
  get(name: string): GitHubApp | undefined;
  /** The app whose numeric id GitHub names in X-GitHub-Hook-Installation-Target-ID. */
  byAppId(appId: string): GitHubApp | undefined;
  /** Called after an app's files changed and were re-read successfully. */
  onChange(listener: (app: GitHubApp) => void): void;
  /** Stops watching files. */
  close(): void;
}

export interface MintRequest {
  installationId: number;
  /** Repository names (without owner) or ids; absent = every repository the installation covers. */
  repositories?: string[];
  repositoryIds?: number[];
  /** Subset of the installation's permissions; absent = all of them. */
  permissions?: Record<string, string>;
  /** Epoch ms after which waiting (rate limits, retries) is pointless: fail instead. */
  deadline?: number;
}

export interface MintedToken {
  /** Opaque, any length. */
  token: string;
  expiresAt: Date;
  installationId: number;
  repositorySelection: "all" | "selected";
  /** owner/name as GitHub answered, or null when the token covers every repository. */
  repositories: string[] | null;
  permissions: Record<string, string>;
}

export interface InstallationTarget {
  installationId?: number;
  owner?: string;
  /** owner/name */
  repository?: string;
}

/**
 * One app's view of the GitHub API. Errors are DomainErrors with Keyplane's codes: NOT_FOUND (naming
 * the owner, repository or installation), BAD_USER_INPUT (a repository or permission the
 * installation lacks), RATE_LIMITED (extensions.retryAfter), PROVIDER_ERROR (401/403: bad app id,
 * wrong key, suspended installation; 5xx after retries).
 */
export interface GitHubAppClient {
  readonly app: string;
  /** One POST /app/installations/{id}/access_tokens (with retries); no caching here. */
  mint(request: MintRequest): Promise<MintedToken>;
  /** The installation id for a target: given, by repository, by owner (org, then user), or the app's only one. Cached. */
  resolveInstallation(target: InstallationTarget, deadline?: number): Promise<number>;
  /** DELETE /installation/token, authenticated with the token itself; an already invalid token is not an error. */
  revokeToken(token: string): Promise<void>;
}

/** Every configured app with its client and install provider (src/github/githubApps.ts). */
export interface GitHubApps {
  registry: GitHubAppRegistry;
  client(name: string): GitHubAppClient | undefined;
  provider(name: string): import("../providers/provider.ts").InstallationProvider | undefined;
  /** The app tenants install when they name none: the only app, or "default", or the first by name. */
  defaultApp?: string;
  /** Resolves once every app's signer was checked at start (its key found, RSA of 2048 bits or more, a signature verified). */
  ready?: Promise<void>;
  close(): void;
}
