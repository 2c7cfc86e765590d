import { BadInputError } from "../errors.ts";
import { ProviderError } from "../providers/provider.ts";
import type { AppRequester } from "./appRequester.ts";
import type { Caller } from "./callWithRetries.ts";
import { refused, tag } from "./githubAppErrors.ts";
import { REVOKE_ROUTE } from "./upstreamRoutes.ts";

/**
 * DELETE /installation/token, authenticated with the token itself (not the app JWT), with the retry
 * policy. A 401 means the token is already revoked or expired, which is what was asked: not an error.
 */
export async function revokeInstallationToken(deps: { requester: AppRequester; call: Caller }, token: string, deadline: number): Promise<void> {
  const { requester, call } = deps;
  const app = requester.app().name;
  if (typeof token !== "string" || token === "" || /[\s\0]/.test(token))
    throw tag(new BadInputError("token: not an installation token", "token"), app, { providerCode: "invalid_token" });
  try {
    await call(
      { route: REVOKE_ROUTE, deadline, refuse: (failure, code) => refused(app, requester.app().appId, failure.status, code, "the token's installation") },
      () => requester.request(REVOKE_ROUTE, { headers: { authorization: `token ${token}` } }),
    );
  } catch (error) {
    if (error instanceof ProviderError && error.httpStatus === 401) return;
    throw error;
  }
}
