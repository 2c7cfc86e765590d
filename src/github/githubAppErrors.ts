import { DomainError } from "../errors.ts";
import { ProviderError } from "../providers/provider.ts";

// The errors a GitHub App call ends in, with Keyplane's stable codes: NOT_FOUND, BAD_USER_INPUT and
// RATE_LIMITED tagged with what GitHub answered (status, GitHub's error code), and PROVIDER_ERROR as a
// GitHubAppError naming the app. Messages name apps, routes, installation ids and GitHub's error codes,
// never a token or a JWT.

/** PROVIDER_ERROR from a GitHub App call: a ProviderError (kind drives Keyplane's reaction) that names the app. */
export class GitHubAppError extends ProviderError {
  constructor(
    readonly app: string,
    providerCode: string,
    kind: "rejected" | "transient" | "invalid",
    httpStatus: number | undefined,
    message: string,
  ) {
    super("github", providerCode, kind, httpStatus);
    this.name = "GitHubAppError";
    this.message = message;
    this.extensions.app = app;
  }
}

/** What GitHub answered, kept beside a DomainError for toProviderError. */
export interface Upstream {
  status?: number;
  providerCode: string;
  retryAfter?: number;
}
const upstreamOf = new WeakMap<object, Upstream>();

/** Marks a DomainError as GitHub's answer for `app`: extensions name the platform, the app and GitHub's code. */
export function tag<E extends DomainError>(error: E, app: string, upstream: Upstream): E {
  upstreamOf.set(error, upstream);
  Object.assign(error.extensions, { platform: "github", app, providerCode: upstream.providerCode });
  return error;
}

/**
 * Any error from a client call as a ProviderError, for callers that speak InstallationProvider:
 * NOT_FOUND -> rejected (404), BAD_USER_INPUT -> invalid (422), RATE_LIMITED -> transient (429/403).
 */
export function toProviderError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  if (error instanceof DomainError) {
    const upstream = upstreamOf.get(error);
    const code = upstream?.providerCode ?? error.code.toLowerCase();
    let converted: ProviderError;
    if (error.code === "NOT_FOUND") converted = new ProviderError("github", code, "rejected", upstream?.status ?? 404);
    else if (error.code === "RATE_LIMITED") converted = new ProviderError("github", code, "transient", upstream?.status ?? 429);
    else converted = new ProviderError("github", code, "invalid", upstream?.status);
    converted.message = error.message;
    Object.assign(converted.extensions, error.extensions);
    return converted;
  }
  return new ProviderError("github", "app_authentication_failed", "invalid");
}

/** 401/403 and other refusals common to every app route; `appId` is named when the JWT was refused. */
export function refused(app: string, appId: string, status: number, code: string, subject?: string): Error {
  if (status === 401) {
    const hint = /expiration_time|issued_at/.test(code)
      ? "its JWT's times even after correcting for GitHub's clock"
      : `its JWT: wrong private key or app id (${appId})?`;
    return new GitHubAppError(app, code, "rejected", status, `GitHub App ${app}: GitHub refused ${hint} (HTTP 401 ${code})`);
  }
  if (status === 403) {
    if (/suspended/.test(code))
      return new GitHubAppError(app, code, "rejected", status, `GitHub App ${app}: ${subject ?? "the installation"} is suspended (HTTP 403)`);
    return new GitHubAppError(app, code, "rejected", status, `GitHub App ${app}: GitHub refused access${subject ? ` to ${subject}` : ""} (HTTP 403 ${code})`);
  }
  return new GitHubAppError(
    app,
    code,
    "invalid",
    status,
    `GitHub App ${app}: GitHub refused the request${subject ? ` for ${subject}` : ""} (HTTP ${status} ${code})`,
  );
}
