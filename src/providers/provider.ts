import { DomainError } from "../errors.ts";

// One shape for every platform Keyplane installs into. Implementations talk to the real service
// (every base URL comes from config, so tests point them at the local fakes in test/fakes/).

export const PLATFORMS = ["github", "slack", "jira"] as const;
export type Platform = (typeof PLATFORMS)[number];

export const isPlatform = (value: string): value is Platform => (PLATFORMS as readonly string[]).includes(value);

/** What a provider hands back for an installation. Secrets live only here and in the encrypted vault. */
export interface ProviderCredentials {
  accessToken: string;
  /** Rotating providers return a new one on every refresh; it replaces the old. */
  refreshToken?: string;
  expiresAt?: Date;
  scopes: string[];
}

/** Public facts about an installation: safe to store in events and read models. */
export interface InstallationInfo {
  /** The platform's id: GitHub installation id, Slack team (or enterprise) id, Atlassian cloud id. */
  externalId: string;
  account: { id: string; login: string; type: string; url?: string };
  /** GitHub: permission -> access level. */
  permissions: Record<string, string>;
  /** Slack bot scopes, Atlassian scopes. */
  scopes: string[];
  /** GitHub only. */
  repositorySelection?: "all" | "selected";
  /** Anything else worth showing (Slack bot user id, other Atlassian sites granted by the consent). */
  details?: Record<string, unknown>;
}

export interface AuthorizationRequest {
  /** Opaque single-use value the provider echoes back to the callback. */
  state: string;
  /** `${publicUrl}/oauth/callback/<platform>` */
  redirectUri: string;
  /** PKCE S256 challenge (providers with `usesPkce`). */
  codeChallenge?: string;
}

export interface CallbackRequest {
  /** The callback's query string as the provider sent it (code, installation_id, setup_action, error…). */
  query: URLSearchParams;
  redirectUri: string;
  /** The PKCE verifier kept with the OAuth state. */
  codeVerifier?: string;
}

export interface CompletedInstallation {
  info: InstallationInfo;
  /** Absent for GitHub: its tokens are minted on demand with the app's key. */
  credentials?: ProviderCredentials;
}

export interface InstallationProvider {
  readonly platform: Platform;
  readonly usesPkce: boolean;
  authorizationUrl(request: AuthorizationRequest): string;
  /** Finishes the browser flow: exchanges the code (Slack, Jira) or checks the installation (GitHub). */
  completeInstallation(callback: CallbackRequest): Promise<CompletedInstallation>;
  /** Spends a refresh token for new credentials; throws ProviderError(kind "rejected") when it is refused. */
  refresh(refreshToken: string): Promise<ProviderCredentials>;
  installationInfo(ref: { externalId: string; accessToken?: string }): Promise<InstallationInfo>;
  /** Revokes at the provider where it can (GitHub: uninstall, Slack: auth.revoke); Jira has no endpoint and does nothing. */
  revoke(ref: { externalId: string; accessToken?: string }): Promise<void>;
  /** GitHub only: a fresh installation access token minted with the app's key. */
  mintInstallationToken?(externalId: string): Promise<ProviderCredentials>;
}

/**
 * A provider said no, or could not be reached. `kind` drives what Keyplane does next:
 * rejected -> the grant is gone (needs_reauth); transient -> retry with backoff; invalid -> caller's fault.
 * The message never contains a token, code or secret: only the provider's own error code.
 */
export class ProviderError extends DomainError {
  constructor(
    readonly platform: Platform,
    readonly providerCode: string,
    readonly kind: "rejected" | "transient" | "invalid",
    readonly httpStatus?: number,
  ) {
    super("PROVIDER_ERROR", `${platform} answered ${providerCode}${httpStatus ? ` (HTTP ${httpStatus})` : ""}`, { platform, providerCode });
    this.name = "ProviderError";
  }
}
