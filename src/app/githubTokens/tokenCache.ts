import { fingerprint } from "../../crypto/fingerprint.ts";
import type { MintedToken } from "../../github/types.ts";

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
    k.repositories === "all" ? "*" : [...k.repositories].map((r) => r.toLowerCase()).sort().join(","),
    Object.entries(k.permissions)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([p, l]) => `${p}=${l}`)
      .join(","),
  ].join("|");

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
  async getOrMint(key: string, meta: { tenantId: string; app: string }, mint: () => Promise<MintedToken>, minValidityMs = 0): Promise<{ token: CachedToken; cached: boolean }> {
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
    for (const [key, entry] of this.entries) if (entry.tenantId === tenantId && entry.app === app && entry.installationId === installationId) this.entries.delete(key);
  }
}
