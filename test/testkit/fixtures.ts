import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { browseInstall } from "./providerWorld.ts";
import { registerSecret } from "./secrets.ts";
import type { GraphQLResponse, SeededTenant, TestApp } from "./testApp.ts";

// The fixture chain past seedTenant (testApp.ts): tenant -> enrollment key -> enrolled agent, a draft
// agent, an installation. Each goes through the public API as a user would, asserts that it worked
// (except enrollWithKey, whose refusals are what some tests are about) and registers the secrets it
// receives, so that the log scan (globalSetup.ts) looks for them.

type Api = Pick<TestApp, "gql">;

function ok<T>(res: GraphQLResponse<T>): T {
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data;
}

export interface EnrollmentKey {
  id: string;
  key: string;
  prefix: string;
  expiresAt: string;
}

/** An enrollment key the tenant's admin creates (single-use unless `input` says otherwise). */
export async function createEnrollmentKey(app: Api, tenant: SeededTenant, input: Record<string, unknown> = {}): Promise<EnrollmentKey> {
  const res = await app.gql(
    "mutation ($input: CreateEnrollmentKeyInput!) { createEnrollmentKey(input: $input) { id key prefix expiresAt } }",
    { input },
    { token: tenant.tokens.admin },
  );
  const created = ok(res).createEnrollmentKey as EnrollmentKey;
  registerSecret(created.key);
  return created;
}

export interface EnrolledAgent {
  agentId: string;
  tenantId: string;
  accessToken: string;
  refreshToken: string;
  expiresAt: string;
}

/**
 * A machine enrolls with `key` (linux, x64, agent version 1.0.0): the answer as it comes, refusals
 * included. The tokens of an enrollment are registered as secrets.
 */
export async function enrollWithKey(
  app: Api,
  key: string,
  options: { hostname?: string; headers?: Record<string, string> } = {},
): Promise<GraphQLResponse<{ enrollAgent: EnrolledAgent }>> {
  const res = await app.gql<{ enrollAgent: EnrolledAgent }>(
    "mutation ($input: EnrollAgentInput!) { enrollAgent(input: $input) { agentId tenantId accessToken refreshToken expiresAt } }",
    { input: { key, hostname: options.hostname ?? `host-${randomUUID().slice(0, 8)}`, os: "linux", arch: "x64", agentVersion: "1.0.0" } },
    { headers: options.headers },
  );
  if (res.data?.enrollAgent) {
    registerSecret(res.data.enrollAgent.accessToken);
    registerSecret(res.data.enrollAgent.refreshToken);
  }
  return res;
}

/** A machine enrolls with a single-use key the tenant's admin created (`keyInput`: its tags, say): a new agent and its own credential. */
export async function enroll(app: Api, tenant: SeededTenant, keyInput: Record<string, unknown> = {}): Promise<EnrolledAgent> {
  const { key } = await createEnrollmentKey(app, tenant, keyInput);
  return ok(await enrollWithKey(app, key)).enrollAgent;
}

/** An agent that exists (created by the tenant's editor, or `token`'s holder) and was never enrolled. Returns its id. */
export async function seedAgent(
  app: Api,
  tenant: SeededTenant,
  input: { name?: string; type?: string; tags?: string[] } = {},
  token = tenant.tokens.editor,
): Promise<string> {
  const res = await app.gql<{ createAgent: { id: string } }>(
    "mutation ($input: CreateAgentInput!) { createAgent(input: $input) { id } }",
    { input: { name: "Build box", type: "builder", ...input } },
    { token },
  );
  return ok(res).createAgent.id;
}

export interface SeededInstallation {
  id: string;
  externalId: string;
  /** The account at the provider (GitHub organization, Slack team, Atlassian site). */
  login: string;
  outcome: "created" | "reauthorized";
  /** The installation as the callback answered it. */
  installation: any;
}

/**
 * An installation through the browser flow (browseInstall): the holder of `token` (an editor) installs
 * `platform` on whatever account the provider fake offers next (world.<provider>.setNextInstall).
 * `query` is added to the install URL (`app=rex` for a named GitHub App).
 */
export async function seedInstallation(
  app: Pick<TestApp, "url">,
  token: string,
  platform: "github" | "slack" | "jira",
  options: { query?: string } = {},
): Promise<SeededInstallation> {
  const result = await browseInstall(app, platform, token, options.query ? { query: options.query } : {});
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  const { installation, outcome } = result.body;
  return { id: installation.id, externalId: installation.externalId, login: installation.account?.login, outcome, installation };
}
