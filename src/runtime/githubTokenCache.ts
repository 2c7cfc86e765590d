import { fingerprint } from "../crypto/fingerprint.ts";
import type { MintedToken } from "../github/types.ts";

export interface CachedToken extends MintedToken {
  fingerprint: string;
  app: string;
  tenantId: string;
}

export interface CacheKeyParts {
  tenantId: string;
  app: string;
  installationId: number;
  repositories: string[] | "all";
  permissions: Record<string, string>;
}

export const cacheKey = (k: CacheKeyParts) =>
  [
    k.tenantId,
    k.app,
    k.installationId,
    k.repositories === "all"
      ? "*"
      : [...k.repositories]
          .map((r) => r.toLowerCase())
          .sort()
          .join(","),
    Object.entries(k.permissions)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([p, l]) => `${p}=${l}`)
      .join(","),
  ].join("|");

// Why this is not @octokit/auth-app's pluggable `cache` ({ get, set } by string key) behind a
// tenant-keyed adapter (read in auth-app 8.3.1, cache.js and get-installation-authentication.js):
// - Its key is installationId|repositoryIds|repositoryNames|permissions with every level but "read"
//   written `name!`: write and admin share a key, so an admin request would get a cached write token
//   (and be told it has admin). Names are keyed as given (order, case); there is no app, no tenant.
// - Its single flight is a module-global map keyed by that same string, before the cache is asked: a
//   tenant-keyed adapter never sees it, concurrent identical requests share one mint whichever auth
//   they came through, and no caller can tell whether its own request reached GitHub. token.issued's
//   `cached` flag and the one vault row per minted token depend on exactly that (getOrMint's `cached`).
// - Its value is token|createdAt|expiresAt|selection|permissions: a hit returns the names asked, not
//   the owner/name list GitHub answered (MintedToken.repositories), and levels as read/write only.
// - get/set is all it asks of a store, and get does not look at expiry (the store's TTL, 59 min by
//   default, does): a caller's minValiditySeconds and the reuse margin cannot reach get(key), and the
//   revocation side (fingerprintsOf, checked against other processes' revocations in the request's one
//   statement; forgetFingerprint; forgetInstallation) lies outside it. An adapter would re-implement all
//   of this on its own store and carry per-call context past auth-app, which would then add only the
//   POST the app's client already makes. What Keyplane does build on auth-app is the app JWT: its hook
//   and clock-skew correction (src/github/appRequester.ts).

/**
 * Per-process cache of GitHub installation tokens with single-flight: an identical request reuses a
 * token until `reuseMarginMs` before it expires, and concurrent identical misses share one mint.
 * Bounded: least recently used entries go first. Tokens live only in memory here.
 */
export class TokenCache {
  private readonly entries = new Map<string, CachedToken>();
  private readonly inFlight = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly max = 1000,
    private readonly reuseMarginMs = 5 * 60_000,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached token for the key, or one minted by `mint` (shared with concurrent callers).
   * `cached` is false only for the caller whose request reached GitHub.
   */
  async getOrMint(
    key: string,
    meta: { tenantId: string; app: string },
    mint: () => Promise<MintedToken>,
    minValidityMs = 0,
  ): Promise<{ token: CachedToken; cached: boolean }> {
    const hit = this.peek(key, minValidityMs);
    if (hit) return { token: hit, cached: true };
    const running = this.inFlight.get(key);
    if (running) return { token: await running, cached: true };
    const flight = mint()
      .then((minted) => {
        const entry: CachedToken = { ...minted, fingerprint: fingerprint(minted.token), ...meta };
        this.set(key, entry);
        return entry;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, flight);
    return { token: await flight, cached: false };
  }

  /** Every token this cache could hand out for the tenant's app: what a request checks for revocation before reusing one. */
  fingerprintsOf(tenantId: string, app: string): string[] {
    const found: string[] = [];
    for (const entry of this.entries.values()) if (entry.tenantId === tenantId && entry.app === app) found.push(entry.fingerprint);
    return found;
  }

  /** The cached token for the key with more than `minValidityMs` (and the reuse margin) left, if any. */
  peek(key: string, minValidityMs = 0): CachedToken | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const left = entry.expiresAt.getTime() - this.now().getTime();
    if (left <= this.reuseMarginMs) {
      this.entries.delete(key);
      return undefined;
    }
    // Too short for this caller, but still good for others.
    if (left <= minValidityMs) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry); // most recently used goes last
    return entry;
  }

  private set(key: string, entry: CachedToken) {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Forgets a token (revoked) wherever it is cached. */
  forgetFingerprint(fp: string): void {
    for (const [key, entry] of this.entries) if (entry.fingerprint === fp) this.entries.delete(key);
  }

  /** Forgets every token of an installation (revoked, suspended, uninstalled). */
  forgetInstallation(tenantId: string, app: string, installationId: number): void {
    for (const [key, entry] of this.entries)
      if (entry.tenantId === tenantId && entry.app === app && entry.installationId === installationId) this.entries.delete(key);
  }
}
