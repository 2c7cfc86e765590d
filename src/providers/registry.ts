import { createHash, randomBytes } from "node:crypto";
import type { ProvidersConfig } from "../config.ts";
import { createJiraProvider } from "./jira.ts";
import type { InstallationProvider, Platform } from "./provider.ts";
import { createSlackProvider } from "./slack.ts";

/**
 * Slack and Jira, when configured. GitHub installs go through the named apps (src/github/githubApps.ts).
 * `now` is Keyplane's clock: a token's expiry is its `expires_in` from then.
 */
export function createProviders(config: ProvidersConfig, now: () => Date): Partial<Record<Platform, InstallationProvider>> {
  const providers: Partial<Record<Platform, InstallationProvider>> = {};
  if (config.slack) providers.slack = createSlackProvider(config.slack, config.timeoutMs, now);
  if (config.jira) providers.jira = createJiraProvider(config.jira, config.timeoutMs, now);
  return providers;
}

/** PKCE S256: base64url(SHA-256(verifier)), no padding (RFC 7636 §4.2). */
export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier, "ascii").digest("base64url");
}

/** A PKCE verifier: 32 random bytes as base64url, 43 characters (RFC 7636 §4.1 asks for 43 to 128). */
export function newPkceVerifier(): string {
  return randomBytes(32).toString("base64url");
}
