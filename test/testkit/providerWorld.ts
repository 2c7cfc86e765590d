import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { startFakeAtlassian, type FakeAtlassian } from "../fakes/atlassian.ts";
import { startFakeGitHub, type FakeGitHub, type FakeGitHubApp } from "../fakes/github.ts";
import { startFakeSlack, type FakeSlack } from "../fakes/slack.ts";
import { registerSecret } from "./secrets.ts";
import type { TestApp } from "./testApp.ts";

/**
 * GitHub, Slack and Atlassian as local fakes, registered with a Keyplane that will listen on a port
 * chosen up front (the providers must know the callback URLs before Keyplane starts). Pass `env` to
 * createTestApp.
 */
export interface ProviderWorld {
  github: FakeGitHub;
  githubApp: FakeGitHubApp;
  /** A second, named app (GITHUB_APP_REX_*): tenants install it with ?app=rex. */
  rexApp: FakeGitHubApp;
  slack: FakeSlack;
  atlassian: FakeAtlassian;
  publicUrl: string;
  env: Record<string, string>;
  close(): Promise<void>;
}

/** The lowest port the kernel hands out for port 0 (Linux; elsewhere the IANA range's start). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 49_152;
  } catch {
    return 49_152;
  }
}

/**
 * A port free now, for a server that must know its own address before it listens (OAuth callbacks).
 * Taken below the kernel's ephemeral range: between this check and that listen, the fakes and clients
 * this suite starts on port 0 could otherwise be handed the very same port.
 */
export async function freePort(): Promise<number> {
  const high = Math.max(10_001, ephemeralLow() - 1);
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (high - 10_000));
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export async function startProviderWorld(): Promise<ProviderWorld> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const callback = (platform: string) => `${publicUrl}/oauth/callback/${platform}`;
  const secret = () => {
    const value = randomBytes(20).toString("hex");
    registerSecret(value);
    return value;
  };
  const github = await startFakeGitHub();
  const githubApp = await github.createApp({
    slug: `keyplane-${randomBytes(3).toString("hex")}`,
    setupUrl: callback("github"),
    clientSecret: secret(),
    webhookSecret: secret(),
  });
  const rexApp = await github.createApp({
    slug: `rex-${randomBytes(3).toString("hex")}`,
    setupUrl: callback("github"),
    clientSecret: secret(),
    webhookSecret: secret(),
  });
  const slackSecret = secret();
  const atlassianSecret = secret();
  const slack = await startFakeSlack({ clientId: "1111.2222", clientSecret: slackSecret, redirectUri: callback("slack") });
  const atlassian = await startFakeAtlassian({ clientId: "atl-client", clientSecret: atlassianSecret, redirectUri: callback("jira") });
  const env: Record<string, string> = {
    PORT: String(port),
    KEYPLANE_PUBLIC_URL: publicUrl,
    GITHUB_URL: github.url,
    GITHUB_API_URL: github.url,
    GITHUB_APP_ID: String(githubApp.appId),
    GITHUB_APP_SLUG: githubApp.slug,
    GITHUB_APP_PRIVATE_KEY: githubApp.privateKeyPem,
    GITHUB_APP_WEBHOOK_SECRET: githubApp.webhookSecret,
    GITHUB_APP_CLIENT_ID: githubApp.clientId,
    GITHUB_APP_CLIENT_SECRET: githubApp.clientSecret,
    GITHUB_APP_REX_ID: String(rexApp.appId),
    GITHUB_APP_REX_SLUG: rexApp.slug,
    GITHUB_APP_REX_PRIVATE_KEY: rexApp.privateKeyPem,
    GITHUB_APP_REX_WEBHOOK_SECRET: rexApp.webhookSecret,
    GITHUB_APP_REX_CLIENT_ID: rexApp.clientId,
    GITHUB_APP_REX_CLIENT_SECRET: rexApp.clientSecret,
    SLACK_API_URL: slack.apiUrl,
    SLACK_CLIENT_ID: "1111.2222",
    SLACK_CLIENT_SECRET: slackSecret,
    ATLASSIAN_AUTH_URL: atlassian.url,
    ATLASSIAN_API_URL: atlassian.url,
    ATLASSIAN_CLIENT_ID: "atl-client",
    ATLASSIAN_CLIENT_SECRET: atlassianSecret,
    // Processes sharing one database share the keyring.
    KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
  };
  return {
    github,
    githubApp,
    rexApp,
    slack,
    atlassian,
    publicUrl,
    env,
    async close() {
      await Promise.all([github.close(), slack.close(), atlassian.close()]);
    },
  };
}

export interface BrowserResult {
  status: number;
  /** Where the flow ended (the last URL requested). */
  url: string;
  location?: string;
  body: any;
  /** Every URL the "browser" visited, in order. */
  visited: string[];
}

/**
 * Plays the browser: GET /oauth/install/<platform> with the user's token, then follows each
 * redirect (without the token, as a browser would cross origins) until a page that is not a redirect,
 * or until a redirect leaves for `stopAt` (e.g. the dashboard's success URL).
 */
export async function browseInstall(
  app: Pick<TestApp, "url">,
  platform: string,
  token: string,
  options: { stopAt?: string; maxHops?: number; query?: string } = {},
): Promise<BrowserResult> {
  return browse(`${app.url}/oauth/install/${platform}${options.query ? `?${options.query}` : ""}`, token, options);
}

/**
 * Plays the browser through linking a GitHub identity: GET /oauth/link/github with the principal's
 * token, GitHub's consent page signed in as `login`, then Keyplane's callback (JSON).
 */
export async function browseLink(
  app: Pick<TestApp, "url">,
  github: FakeGitHub,
  token: string,
  login: string,
  options: { stopAt?: string; maxHops?: number; query?: string } = {},
): Promise<BrowserResult> {
  github.signInAs(login);
  return browse(`${app.url}/oauth/link/github${options.query ? `?${options.query}` : ""}`, token, options);
}

async function browse(start: string, token: string, options: { stopAt?: string; maxHops?: number }): Promise<BrowserResult> {
  let url = start;
  const visited: string[] = [];
  let headers: Record<string, string> = { authorization: `Bearer ${token}` };
  for (let hop = 0; hop < (options.maxHops ?? 6); hop++) {
    visited.push(url);
    const res = await fetch(url, { redirect: "manual", headers });
    headers = {};
    const location = res.headers.get("location") ?? undefined;
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url).toString();
      if (options.stopAt && next.startsWith(options.stopAt)) return { status: res.status, url, location: next, body: null, visited };
      url = next;
      continue;
    }
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      // an HTML page of a fake
    }
    return { status: res.status, url, location, body, visited };
  }
  throw new Error(`browser flow did not settle: ${visited.join(" -> ")}`);
}
