import { BadInputError } from "../../errors.ts";
import type { GitHubUserEndpoints } from "../../github/userAuthorization.ts";
import type { GitHubApp } from "../../github/types.ts";
import type { AppDeps } from "../deps.ts";

/** Where a link's consent comes back to (one of the GitHub App's registered Callback URLs). */
export const linkCallbackUrl = (deps: Pick<AppDeps, "config">) => `${deps.config.providers.publicUrl}/oauth/link/github/callback`;

export const userEndpoints = (deps: Pick<AppDeps, "config">): GitHubUserEndpoints => ({
  webUrl: deps.config.githubApps.webUrl,
  apiUrl: deps.config.githubApps.apiUrl,
  timeoutMs: deps.config.githubApps.timeoutMs,
});

/**
 * The GitHub App identities are linked through, as a caller named it (the default app when none is
 * named), with its OAuth client: a clear BAD_USER_INPUT otherwise.
 */
export function linkingApp(deps: Pick<AppDeps, "githubApps">, name?: string | null): GitHubApp {
  const appName = name ?? deps.githubApps.defaultApp;
  const app = appName ? deps.githubApps.registry.get(appName) : undefined;
  if (!app)
    throw new BadInputError(
      name ? `app: no GitHub App named ${JSON.stringify(name.slice(0, 40))} is configured` : "app: no GitHub App is configured on this Keyplane",
      "app",
    );
  if (!app.clientId || !app.clientSecret)
    throw new BadInputError(
      `app: the GitHub App ${app.name} has no OAuth client (GITHUB_APP_${app.name.toUpperCase().replace(/-/g, "_")}_CLIENT_ID and _CLIENT_SECRET)`,
      "app",
    );
  return app;
}
