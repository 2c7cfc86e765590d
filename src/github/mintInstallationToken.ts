import { BadInputError, NotFoundError } from "../errors.ts";
import { isRecord, str } from "../providers/http.ts";
import type { AppRequester } from "./appRequester.ts";
import type { Caller } from "./callWithRetries.ts";
import { GitHubAppError, refused, tag } from "./githubAppErrors.ts";
import { checkInstallationId } from "./resolveInstallation.ts";
import type { MintedToken, MintRequest } from "./types.ts";
import { MINT_ROUTE } from "./upstreamRoutes.ts";

// One POST /app/installations/{installation_id}/access_tokens, narrowed to repositories (by name or id)
// and permissions. Requests that cannot be right are refused before GitHub sees them (an empty list
// never means "all"); a 422 names the repository or permission the installation lacks; a 404 makes
// the resolver forget the installation. No caching here: the caller caches
// (src/runtime/githubTokenCache.ts).

export interface MintDeps {
  requester: AppRequester;
  call: Caller;
  /** Forgets a discovered installation GitHub says is gone. */
  forgetInstallation(installationId: number): void;
}

export async function mintInstallationToken(deps: MintDeps, mintRequest: MintRequest, deadline: number): Promise<MintedToken> {
  const { requester, call } = deps;
  const app = requester.app().name;
  const installationId = checkInstallationId(app, mintRequest.installationId);
  const body: Record<string, unknown> = { installation_id: installationId };
  const names = mintRequest.repositories;
  if (names !== undefined) {
    if (!Array.isArray(names) || names.length === 0)
      throw tag(new BadInputError("repositories: name at least one repository, or leave it out for all of them", "repositories"), app, {
        providerCode: "invalid_repositories",
      });
    for (const name of names) {
      if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
        throw tag(new BadInputError("repositories: repository names without the owner expected (letters, digits, . _ -)", "repositories"), app, {
          providerCode: "invalid_repositories",
        });
      }
    }
    body.repositories = [...names];
  }
  const ids = mintRequest.repositoryIds;
  if (ids !== undefined) {
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => Number.isSafeInteger(id) && id > 0)) {
      throw tag(new BadInputError("repositoryIds: positive repository ids expected, at least one", "repositoryIds"), app, {
        providerCode: "invalid_repository_ids",
      });
    }
    body.repository_ids = [...ids];
  }
  if (mintRequest.permissions !== undefined) {
    const permissions = mintRequest.permissions;
    if (
      !isRecord(permissions) ||
      !Object.entries(permissions).every(([k, v]) => /^[a-z][a-z0-9_]{0,63}$/.test(k) && (v === "read" || v === "write" || v === "admin"))
    ) {
      throw tag(new BadInputError("permissions: a map of permission name to read, write or admin expected", "permissions"), app, {
        providerCode: "invalid_permissions",
      });
    }
    body.permissions = { ...permissions };
  }
  const subject = `installation ${installationId} of GitHub App ${app}`;
  const { data } = await call(
    {
      route: MINT_ROUTE,
      deadline,
      refuse: (failure, code) => {
        if (failure.status === 404) {
          deps.forgetInstallation(installationId);
          return tag(new NotFoundError(subject), app, { status: 404, providerCode: code });
        }
        if (failure.status === 422) return lacking(app, installationId, mintRequest, failure.message ?? "", code);
        return refused(app, requester.app().appId, failure.status, code, `installation ${installationId}`);
      },
    },
    () => requester.appRequest(MINT_ROUTE, body),
  );
  return mintedToken(app, installationId, data);
}

/** 422 on a token request: a repository or permission the installation does not have. */
function lacking(app: string, installationId: number, request: MintRequest, message: string, code: string): Error {
  const asked: string[] = [];
  if (/permission/i.test(message) && request.permissions) {
    const list = Object.entries(request.permissions)
      .map(([k, v]) => `${k}:${v}`)
      .join(", ");
    return tag(
      new BadInputError(`permissions: installation ${installationId} of GitHub App ${app} does not grant ${list} (GitHub: ${code})`, "permissions"),
      app,
      { status: 422, providerCode: code },
    );
  }
  if (request.repositories?.length) asked.push(...request.repositories);
  if (request.repositoryIds?.length) asked.push(...request.repositoryIds.map((id) => `id ${id}`));
  if (/repositor/i.test(message) && asked.length) {
    const field = request.repositories?.length ? "repositories" : "repositoryIds";
    const which = asked.length === 1 ? `repository ${asked[0]}` : `every one of the repositories ${asked.join(", ")}`;
    return tag(
      new BadInputError(
        `${field}: installation ${installationId} of GitHub App ${app} does not cover ${which} (it does not exist or is not accessible to the installation)`,
        field,
      ),
      app,
      { status: 422, providerCode: code },
    );
  }
  return tag(new BadInputError(`installation ${installationId} of GitHub App ${app}: GitHub refused the token request (${code})`), app, {
    status: 422,
    providerCode: code,
  });
}

function mintedToken(app: string, installationId: number, data: unknown): MintedToken {
  const body = isRecord(data) ? data : {};
  const token = str(body.token);
  const expiresAt = typeof body.expires_at === "string" ? new Date(body.expires_at) : undefined;
  if (!token || !expiresAt || Number.isNaN(expiresAt.getTime())) {
    throw new GitHubAppError(
      app,
      "invalid_response",
      "transient",
      undefined,
      `GitHub App ${app}: GitHub's token answer for installation ${installationId} is incomplete`,
    );
  }
  const permissions: Record<string, string> = {};
  if (isRecord(body.permissions)) for (const [k, v] of Object.entries(body.permissions)) if (typeof v === "string") permissions[k] = v;
  const repositories = Array.isArray(body.repositories)
    ? body.repositories.map((r) => (isRecord(r) ? str(r.full_name) : undefined)).filter((r): r is string => r !== undefined)
    : null;
  return {
    token,
    expiresAt,
    installationId,
    repositorySelection: body.repository_selection === "selected" ? "selected" : "all",
    repositories,
    permissions,
  };
}
