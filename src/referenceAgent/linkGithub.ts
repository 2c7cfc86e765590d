import path from "node:path";
import { parseArgs } from "node:util";
import { systemClock, type Clock } from "../cli/clock.ts";
import { UsageError, type CliIo } from "../cli/command.ts";
import type { Log } from "../cli/jsonLog.ts";
import type { Config } from "../config.ts";
import { ApiError, graphqlClient, LINKED_IDENTITIES, START_IDENTITY_LINK, type GraphQLRequest } from "./keyplaneApi.ts";
import { serverOption } from "./run.ts";
import { AgentSession, DeadCredentialError } from "./session.ts";
import { CREDENTIAL_FILE, lockStateDir, readCredential, StateDirError } from "./stateDir.ts";

/**
 * `keyplane agent link-github`: links the GitHub account an enrolled agent acts as on GitHub (forks,
 * commits, pull requests through Keyplane). With the agent's stored credential it calls
 * startIdentityLink, prints the authorization URL for a person to open in a browser signed in to that
 * GitHub account, and waits (polling linkedIdentities) until GitHub has come back to Keyplane: then
 * "linked as <login>". Keyplane keeps the GitHub tokens; the agent never sees them.
 *
 * The credential may be in use by a running `keyplane agent run`: this command only reads it, and
 * never refreshes it while that agent holds the state directory (two processes refreshing one
 * credential spend each other's refresh tokens, which Keyplane answers by revoking the session); it
 * waits for the agent's own refresh instead. With no agent running it refreshes under the lock.
 *
 * stdout: the URL, then "linked as <login> (app <app>)". stderr: what to do with it, and errors.
 * Exit status: 0 linked (or the URL printed, with --no-wait), 1 not linked before the link expired,
 * 2 usage or configuration (no credential), 3 refused (dead credential, not permitted, unknown app),
 * 4 Keyplane unreachable.
 */

const OPTIONS = {
  "state-dir": { type: "string" },
  server: { type: "string" },
  app: { type: "string" },
  "no-wait": { type: "boolean" },
  // Not in the usage text, for tests: how often linkedIdentities is asked.
  "poll-seconds": { type: "string" },
} as const;

export interface LinkGithubOptions {
  stateDir: string;
  server?: string;
  app?: string;
  wait: boolean;
  pollMs: number;
}

const DEFAULT_POLL_MS = 2_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** A token this close to its expiry is not used: the running agent (or this command) refreshes it first. */
const EXPIRY_MARGIN_MS = 30_000;
/** How long to wait for a running agent to refresh the credential this command cannot refresh itself. */
const AGENT_REFRESH_WAIT_MS = 60_000;
/** Keyplane unreachable this many times in a row: give up (exit 4). */
const UNREACHABLE_ATTEMPTS = 5;

/** The command line of `agent link-github` (after `agent link-github`). Throws UsageError. */
export function parseLinkGithubArgs(args: string[]): LinkGithubOptions {
  const v = parseArgs({ args, options: OPTIONS, allowPositionals: false, strict: true }).values;
  if (v["state-dir"] === "") throw new UsageError("--state-dir is a directory");
  const server = v.server === undefined ? undefined : serverOption(v.server);
  if (v.app !== undefined && !/^[a-z0-9][a-z0-9-]{0,39}$/i.test(v.app))
    throw new UsageError(`--app is the name of a GitHub App configured on Keyplane (got '${v.app}')`);
  let pollMs = DEFAULT_POLL_MS;
  if (v["poll-seconds"] !== undefined) {
    const n = Number(v["poll-seconds"]);
    if (!(Number.isFinite(n) && n > 0 && n <= 60)) throw new UsageError(`--poll-seconds is a positive number up to 60 (got '${v["poll-seconds"]}')`);
    pollMs = n * 1000;
  }
  return { stateDir: v["state-dir"] ?? ".keyplane-agent", server, app: v.app, wait: !v["no-wait"], pollMs };
}

/** Test seams. */
export interface LinkGithubDeps {
  fetch?: typeof fetch;
  clock?: Clock;
  /** Stops waiting (as Ctrl-C would), exit 1. */
  signal?: AbortSignal;
}

/** Why the command stops, with its exit status. */
class Stop extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

interface Identity {
  id: string;
  app: string;
  login: string;
  status: string;
  linkedAt: string;
}

export async function runAgentLinkGithub(args: string[], _config: Config, io: CliIo, deps: LinkGithubDeps = {}): Promise<number> {
  const options = parseLinkGithubArgs(args);
  const clock = deps.clock ?? systemClock;
  const signal = deps.signal ?? new AbortController().signal;
  const say = (text: string) => io.err(`${text}\n`);
  try {
    const stateDir = path.resolve(options.stateDir);
    const stored = await credentialIn(stateDir);
    const server = options.server ?? stored.server;
    if (!server) throw new Stop(2, `${path.join(stateDir, CREDENTIAL_FILE)} names no server: give --server`);
    const api = new StoredCredentialApi(stateDir, graphqlClient(server, deps.fetch ?? fetch), clock, say, signal);

    const before = new Map((await api.identities()).map((i) => [i.id, i.linkedAt]));
    const started = await api.call<{ startIdentityLink?: { authorizationUrl?: unknown; expiresAt?: unknown } }>(START_IDENTITY_LINK, {
      app: options.app ?? null,
    });
    const url = started.startIdentityLink?.authorizationUrl;
    const expiresAt = Date.parse(String(started.startIdentityLink?.expiresAt));
    if (typeof url !== "string" || Number.isNaN(expiresAt)) throw new Stop(1, "Keyplane's answer to startIdentityLink holds no authorization URL");
    const until = new Date(expiresAt).toISOString();
    io.out(`${url}\n`);
    say(
      `Open this URL in a browser signed in to the GitHub account agent:${stored.agentId} should act as, and approve the app. ` +
        `It works once, until ${until}.`,
    );
    if (!options.wait) return 0;
    say("Waiting for GitHub to come back to Keyplane…");

    while (clock.now() < expiresAt) {
      await clock.sleep(Math.min(options.pollMs, Math.max(0, expiresAt - clock.now())), signal);
      if (signal.aborted) throw new Stop(1, `stopped waiting; the URL still works until ${until}`);
      const linked = (await api.identities()).find((i) => (!options.app || i.app === options.app) && i.status === "linked" && before.get(i.id) !== i.linkedAt);
      if (linked) {
        io.out(`linked as ${linked.login} (app ${linked.app})\n`);
        return 0;
      }
    }
    throw new Stop(1, `the link was not completed before it expired (${until}); run keyplane agent link-github again`);
  } catch (error) {
    if (error instanceof Stop) {
      say(`keyplane agent link-github: ${error.message}`);
      return error.code;
    }
    if (error instanceof StateDirError) {
      say(`keyplane agent link-github: ${error.message}`);
      return 2;
    }
    if (error instanceof DeadCredentialError) {
      say(`keyplane agent link-github: ${error.message}`);
      return 3;
    }
    if (error instanceof ApiError) {
      say(`keyplane agent link-github: Keyplane ${error.kind === "unavailable" ? "could not be reached" : "refused"}: ${error.message}`);
      return error.kind === "unavailable" ? 4 : 3;
    }
    throw error;
  }
}

async function credentialIn(stateDir: string) {
  const credential = await readCredential(stateDir);
  if (!credential) {
    throw new Stop(2, `no credential in ${stateDir}: enroll the agent first (keyplane agent run --key kpe_… --state-dir ${stateDir})`);
  }
  return credential;
}

/**
 * Requests as the agent whose credential is in the state directory, read afresh for every request (a
 * running agent replaces it on every refresh). Refreshes it only when no agent holds the directory.
 */
class StoredCredentialApi {
  constructor(
    private readonly stateDir: string,
    private readonly request: GraphQLRequest,
    private readonly clock: Clock,
    private readonly say: (text: string) => void,
    private readonly signal: AbortSignal,
  ) {}

  async identities(): Promise<Identity[]> {
    const data = await this.call<{ linkedIdentities?: unknown }>(LINKED_IDENTITIES, {});
    return Array.isArray(data.linkedIdentities) ? (data.linkedIdentities as Identity[]) : [];
  }

  /** One request; Keyplane unreachable is tried again (with a note) a few times, a refused token refreshed once. */
  async call<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    let refreshed = false;
    for (let unreachable = 0; ; ) {
      const token = await this.token();
      try {
        return await this.request<T>(query, variables, { token, timeoutMs: REQUEST_TIMEOUT_MS });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.kind === "auth" && !refreshed) {
          refreshed = true;
          await this.refresh(token);
          continue;
        }
        if ((error.kind === "unavailable" || error.kind === "rate_limited") && ++unreachable < UNREACHABLE_ATTEMPTS && !this.signal.aborted) {
          if (unreachable === 1) this.say(`Keyplane did not answer (${error.message}); trying again`);
          await this.clock.sleep(error.retryAfterMs ?? 1_000 * 2 ** unreachable, this.signal);
          continue;
        }
        throw error;
      }
    }
  }

  private async token(): Promise<string> {
    const credential = await credentialIn(this.stateDir);
    if (this.clock.now() < Date.parse(credential.expiresAt) - EXPIRY_MARGIN_MS) return credential.accessToken;
    await this.refresh(credential.accessToken);
    return (await credentialIn(this.stateDir)).accessToken;
  }

  /** A credential whose access token `spent` no longer works: refreshed here, or by the agent running on it. */
  private async refresh(spent: string): Promise<void> {
    let unlock: () => void;
    try {
      unlock = lockStateDir(this.stateDir);
    } catch (error) {
      if (!(error instanceof StateDirError)) throw error;
      // An agent runs on this credential: it alone refreshes it. Wait for the new token it stores.
      const deadline = this.clock.now() + AGENT_REFRESH_WAIT_MS;
      while (this.clock.now() < deadline && !this.signal.aborted) {
        if ((await credentialIn(this.stateDir)).accessToken !== spent) return;
        await this.clock.sleep(1_000, this.signal);
      }
      throw new Stop(3, `the agent running on ${this.stateDir} has not refreshed its credential; is it connected to Keyplane?`);
    }
    try {
      const credential = await credentialIn(this.stateDir);
      if (credential.accessToken !== spent) return; // refreshed meanwhile
      const log: Log = (level, msg) => {
        if (level === "warn" || level === "error") this.say(msg);
      };
      const session = new AgentSession(credential, {
        request: this.request,
        stateDir: this.stateDir,
        log,
        now: () => this.clock.now(),
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
      });
      await session.refresh();
    } finally {
      unlock();
    }
  }
}
