import type { Log } from "../cli/jsonLog.ts";
import { ApiError, REFRESH_SESSION, sessionPairOf, type GraphQLRequest } from "./keyplaneApi.ts";
import { writeCredential, type Credential } from "./stateDir.ts";

// The agent's session: an access token used for everything, and a rotating refresh token. Refreshing
// spends the old refresh token; presenting a spent one again makes Keyplane revoke the whole session.
// So: one refresh at a time, never cancelled half-way, and the new pair stored before it is used.

/** The credential is no longer accepted: the operator has to enroll the agent again. */
export class DeadCredentialError extends Error {}

/** Refresh this long before the access token expires (or at half its life, when that is shorter). */
export const REFRESH_LEAD_MS = 5 * 60_000;

export interface SessionOptions {
  request: GraphQLRequest;
  stateDir: string;
  log: Log;
  now: () => number;
  requestTimeoutMs: number;
}

export class AgentSession {
  private refreshing: Promise<void> | null = null;

  constructor(
    private current: Credential,
    private readonly options: SessionOptions,
  ) {}

  get credential(): Readonly<Credential> {
    return this.current;
  }

  /** When the access token should be replaced (epoch ms). */
  refreshDueAt(): number {
    const expires = Date.parse(this.current.expiresAt);
    const obtained = Date.parse(this.current.obtainedAt);
    const life = Number.isNaN(obtained) ? REFRESH_LEAD_MS * 2 : Math.max(0, expires - obtained);
    return expires - Math.min(REFRESH_LEAD_MS, life / 2);
  }

  expired(): boolean {
    return this.options.now() >= Date.parse(this.current.expiresAt) - 5_000;
  }

  /**
   * The access token to use now; refreshed first when it is due. While Keyplane cannot be reached a
   * token that is due but still valid is used as is; an expired one raises the ApiError.
   */
  async accessToken(): Promise<string> {
    if (this.options.now() >= this.refreshDueAt()) {
      try {
        await this.refresh();
      } catch (error) {
        if (error instanceof ApiError && error.kind !== "auth" && !this.expired()) {
          this.options.log("warn", "could not refresh the session yet; the access token is still valid", {
            error: error.message,
            expiresAt: this.current.expiresAt,
          });
          return this.current.accessToken;
        }
        throw error;
      }
    }
    return this.current.accessToken;
  }

  /** Keyplane refused `token`: refresh, unless the session moved on since that token was sent. */
  async refused(token: string): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (token !== this.current.accessToken) return;
    return this.refresh();
  }

  /** One refresh at a time; callers during a refresh share it. Throws ApiError or DeadCredentialError. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Resolves once no refresh is in flight (a stop must not cut one off: the new pair would be lost). */
  async settle(): Promise<void> {
    while (this.refreshing) await this.refreshing.catch(() => {});
  }

  private async doRefresh(): Promise<void> {
    const before = this.current;
    let data: { refreshSession?: unknown };
    try {
      // No stop signal: once sent, the answer must be kept whatever happens.
      data = await this.options.request<{ refreshSession?: unknown }>(
        REFRESH_SESSION,
        { refreshToken: before.refreshToken },
        { timeoutMs: this.options.requestTimeoutMs },
      );
    } catch (error) {
      if (error instanceof ApiError && error.kind === "auth") {
        throw new DeadCredentialError(
          `Keyplane refused the agent's session (${error.message}): the agent was deleted or its session revoked or expired. ` +
            `Enroll it again: remove ${this.options.stateDir}/credential.json and run with --key and a new enrollment key`,
        );
      }
      throw error;
    }
    const pair = sessionPairOf(data.refreshSession, "refreshSession");
    this.current = {
      ...before,
      ...pair,
      refreshExpiresAt: pair.refreshExpiresAt ?? before.refreshExpiresAt,
      obtainedAt: new Date(this.options.now()).toISOString(),
    };
    try {
      await writeCredential(this.options.stateDir, this.current);
    } catch (error) {
      this.options.log(
        "error",
        "could not store the refreshed credential; the stored refresh token is spent, so if this process stops the agent must be enrolled again",
        {
          error: (error as NodeJS.ErrnoException).code ?? String(error),
        },
      );
      return;
    }
    this.options.log("info", "session refreshed", { expiresAt: this.current.expiresAt });
  }
}
