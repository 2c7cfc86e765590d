import { BadInputError, DomainError, NotFoundError } from "../errors.ts";
import { isRecord, num } from "../providers/http.ts";
import type { AppRequester } from "./appRequester.ts";
import type { Caller } from "./callWithRetries.ts";
import { GitHubAppError, refused, tag } from "./githubAppErrors.ts";
import type { InstallationTarget } from "./types.ts";

// Which installation of one GitHub App a request means: the id it names, or the one GitHub finds by
// repository (GET /repos/{owner}/{repo}/installation), by account (the organization route, then the user
// route), or the app's only installation. Found ids are cached per app key (ten minutes, LRU bounded);
// concurrent identical lookups share one; misses and failures are not cached, and a minted 404 forgets
// the id (`forget`).

export interface InstallationResolverOptions {
  /** How long a discovered installation id is reused (default 10 minutes), and how many are kept (default 1000). */
  ttlMs?: number;
  maxEntries?: number;
  /** Keyplane's clock, which ages the cached ids (the system's by default). */
  now?: () => Date;
}

export interface InstallationResolver {
  resolve(target: InstallationTarget, deadline: number): Promise<number>;
  /** Forgets every lookup that found this installation (GitHub says it is gone). */
  forget(installationId: number): void;
}

export function createInstallationResolver(requester: AppRequester, call: Caller, options: InstallationResolverOptions = {}): InstallationResolver {
  const ttlMs = options.ttlMs ?? 10 * 60_000;
  const maxEntries = options.maxEntries ?? 1000;
  const now = () => (options.now ? options.now().getTime() : Date.now());
  const discovered = new Map<string, { installationId: number; expiresAt: number; appId: string }>();
  const inflight = new Map<string, Promise<number>>();
  const appName = () => requester.app().name;
  const appId = () => requester.app().appId;

  function remember(key: string, installationId: number, appId: string) {
    discovered.delete(key);
    discovered.set(key, { installationId, expiresAt: now() + ttlMs, appId });
    while (discovered.size > maxEntries) discovered.delete(discovered.keys().next().value!);
  }

  async function lookup(app: string, route: string, parameters: Record<string, string>, subject: string, deadline: number): Promise<number | undefined> {
    try {
      const { data } = await call(
        {
          route,
          deadline,
          refuse: (failure, code) => {
            if (failure.status === 404) return tag(new NotFoundError(subject), app, { status: 404, providerCode: code });
            return refused(app, appId(), failure.status, code, subject);
          },
        },
        () => requester.appRequest(route, parameters),
      );
      return installationIdOf(app, data);
    } catch (error) {
      if (error instanceof DomainError && error.code === "NOT_FOUND") return undefined;
      throw error;
    }
  }

  async function discover(target: InstallationTarget, deadline: number): Promise<{ key: string; find: () => Promise<number> }> {
    const app = appName();
    if (target.repository !== undefined) {
      const match = /^([A-Za-z0-9_.-]{1,39})\/([A-Za-z0-9_.-]{1,100})$/.exec(target.repository.trim());
      if (!match) throw tag(new BadInputError("repository: owner/name expected", "repository"), app, { providerCode: "invalid_repository" });
      const [owner, repo] = [match[1]!, match[2]!];
      return {
        key: `repo:${owner.toLowerCase()}/${repo.toLowerCase()}`,
        find: async () => {
          const id = await lookup(
            app,
            "GET /repos/{owner}/{repo}/installation",
            { owner, repo },
            `installation of GitHub App ${app} on repository ${owner}/${repo}`,
            deadline,
          );
          if (id === undefined) throw notInstalled(app, `repository ${owner}/${repo}`);
          return id;
        },
      };
    }
    if (target.owner !== undefined) {
      const owner = target.owner.trim();
      if (!/^[A-Za-z0-9_.-]{1,39}$/.test(owner))
        throw tag(new BadInputError("owner: a GitHub account login expected", "owner"), app, { providerCode: "invalid_owner" });
      return {
        key: `owner:${owner.toLowerCase()}`,
        find: async () => {
          const subject = `installation of GitHub App ${app} on account ${owner}`;
          const id =
            (await lookup(app, "GET /orgs/{org}/installation", { org: owner }, subject, deadline)) ??
            (await lookup(app, "GET /users/{username}/installation", { username: owner }, subject, deadline));
          if (id === undefined) throw notInstalled(app, `account ${owner}`);
          return id;
        },
      };
    }
    return {
      key: "only",
      find: async () => {
        const route = "GET /app/installations";
        const { data } = await call({ route, deadline, refuse: (failure, code) => refused(app, appId(), failure.status, code) }, () =>
          requester.appRequest(route, { per_page: 2 }),
        );
        const list = Array.isArray(data) ? data : [];
        if (list.length === 0)
          throw tag(new NotFoundError(`installation of GitHub App ${app} (it is installed nowhere)`), app, { status: 404, providerCode: "no_installation" });
        if (list.length > 1) {
          throw tag(new BadInputError(`GitHub App ${app} has several installations: name the owner or the repository`, "owner"), app, {
            providerCode: "several_installations",
          });
        }
        return installationIdOf(app, list[0]);
      },
    };
  }

  return {
    async resolve(target, deadline) {
      if (target.installationId !== undefined) return checkInstallationId(appName(), target.installationId);
      const { key, find } = await discover(target, deadline);
      const currentAppId = appId();
      const cached = discovered.get(key);
      if (cached && cached.expiresAt > now() && cached.appId === currentAppId) {
        discovered.delete(key);
        discovered.set(key, cached);
        return cached.installationId;
      }
      const pending = inflight.get(key);
      if (pending) return pending;
      const lookupPromise = find()
        .then((installationId) => {
          remember(key, installationId, currentAppId);
          return installationId;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, lookupPromise);
      return lookupPromise;
    },

    forget(installationId) {
      for (const [key, entry] of discovered) if (entry.installationId === installationId) discovered.delete(key);
    },
  };
}

/** A positive integer installation id, or BAD_USER_INPUT before GitHub is asked. */
export function checkInstallationId(app: string, installationId: unknown): number {
  if (typeof installationId !== "number" || !Number.isSafeInteger(installationId) || installationId <= 0) {
    throw tag(new BadInputError("installationId: a positive integer expected", "installationId"), app, { providerCode: "invalid_installation_id" });
  }
  return installationId;
}

function installationIdOf(app: string, data: unknown): number {
  const id = isRecord(data) ? num(data.id) : undefined;
  if (id === undefined || !Number.isSafeInteger(id) || id <= 0)
    throw new GitHubAppError(app, "invalid_response", "transient", undefined, `GitHub App ${app}: GitHub's installation answer has no id`);
  return id;
}

function notInstalled(app: string, where: string) {
  const error = tag(new NotFoundError(`installation of GitHub App ${app} on ${where}`), app, { status: 404, providerCode: "not_found" });
  error.message = `GitHub App ${app} is not installed on ${where} (no installation found)`;
  return error;
}
